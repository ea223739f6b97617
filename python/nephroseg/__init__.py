"""nephroseg: GBMSeg and GlomSAM kidney-biopsy segmentation from Python.

The C++ library (LibTorch + OpenCV) with numpy in and out:

    import nephroseg as ns
    sam = ns.Sam.load("sam_vit_b_01ec64.pth", model_type="vit_b")
    emb = sam.encode(image)                        # HxWx3 uint8 RGB, one encoder pass
    r = sam.predict(emb, points=[[120, 80]], labels=[1])
    r.masks, r.iou, r.low_res_logits               # bool / float32 numpy arrays

Images are HxWx3 uint8 RGB, masks HxW bool or uint8, logits float32. C-contiguous
arrays are read in place; other layouts are copied once. Model calls release the GIL.
Bad input raises ValueError, other failures RuntimeError, with the library's message.
See docs/python.md; help(ns.Sam), help(ns.GbmSeg), ... describe each call.
"""

from ._nephroseg import (  # noqa: F401
    __version__,
    Dinov2,
    GbmSeg,
    GlomSam,
    ImageEmbedding,
    Sam,
    SamResult,
    active_blas_library,
    better_openblas_kernel,
    gbmseg_batch,
    get_num_threads,
    glomsam_predict,
    measure_thickness,
    merge_shards,
    metrics,
    openblas_kernel,
    read_image,
    read_image_raw,
    read_mask,
    run_slide,
    run_slides,
    sam_batch,
    set_num_threads,
    summarize,
    thickness_reference_ranges,
    write_image,
    write_mask,
)

__all__ = [
    "Dinov2",
    "GbmSeg",
    "GlomSam",
    "ImageEmbedding",
    "Sam",
    "SamResult",
    "active_blas_library",
    "better_openblas_kernel",
    "gbmseg_batch",
    "get_num_threads",
    "glomsam_predict",
    "measure_thickness",
    "merge_shards",
    "metrics",
    "openblas_kernel",
    "read_image",
    "read_image_raw",
    "read_mask",
    "run_slide",
    "run_slides",
    "sam_batch",
    "set_num_threads",
    "summarize",
    "thickness_reference_ranges",
    "write_image",
    "write_mask",
]

if better_openblas_kernel():
    import warnings as _warnings

    # OpenBLAS picks its kernels when it is loaded, so a process cannot fix this itself;
    # the CLI re-runs itself with the variable set (docs/precision.md, "BLAS kernels").
    _warnings.warn(
        f"OpenBLAS does not know this CPU model and runs its generic '{openblas_kernel()}' "
        f"kernels (fp32 matrix products about 4x slower); start Python with "
        f"OPENBLAS_CORETYPE={better_openblas_kernel()} set",
        RuntimeWarning,
        stacklevel=2,
    )
