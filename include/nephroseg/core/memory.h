// nephroseg/core/memory.h: process-wide allocator settings for large-tensor workloads.
#pragma once

namespace nephroseg {

/// Makes glibc's malloc keep freed memory for reuse instead of handing every large
/// block back to the kernel. By default each tensor above the mmap threshold
/// (128 KiB, rising to at most 32 MiB) gets fresh pages from mmap and gives them back on
/// free, so a ViT forward pass spends a large share of its time in page faults and
/// page zeroing (the SAM ViT-L encoder: 16 of 56 s of CPU time in the kernel on our
/// 2-core machines). Tuned: no mmap for the main arena, no trimming of the heap top.
/// Peak memory stays the same order (freed blocks are reused); resident memory no
/// longer shrinks after a peak, which suits a batch tool.
///
/// Call once at start-up, before large allocations. The environment variable
/// NEPHROSEG_MALLOC=default leaves the allocator alone. Returns true when the
/// settings were applied (glibc only; false elsewhere or when disabled).
bool tune_allocator_for_large_tensors();

}  // namespace nephroseg
