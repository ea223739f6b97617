# Type stubs for the nephroseg package (the C++ module nephroseg._nephroseg).
# Shapes: H x W images; C masks per prompt; N points; D feature width; S working size.
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = Union[npt.ArrayLike, Sequence[Sequence[float]]]
ConfigArg = Union[None, str, Dict[str, Any]]

def set_num_threads(n: int) -> int:
    """Sets the library's intra-op threads (n <= 0: every core); returns the count in force."""
def get_num_threads() -> int: ...
def active_blas_library() -> str: ...
def openblas_kernel() -> str: ...
def better_openblas_kernel() -> str: ...

class ImageEmbedding:
    """SAM encoder output of one image; reusable by any number of Sam.predict calls."""
    @property
    def embedding(self) -> npt.NDArray[np.float32]: ...  # [1, prompt_embed_dim, grid, grid]
    @property
    def original_size(self) -> Tuple[int, int]: ...      # (H, W)
    @property
    def input_size(self) -> Tuple[int, int]: ...
    @property
    def encode_seconds(self) -> float: ...

class SamResult:
    @property
    def masks(self) -> npt.NDArray[np.bool_]: ...          # [C, H, W]
    @property
    def iou(self) -> npt.NDArray[np.float32]: ...          # [C]
    @property
    def low_res_logits(self) -> npt.NDArray[np.float32]: ...  # [C, low_res, low_res]
    @property
    def mask_logits(self) -> npt.NDArray[np.float32]: ...  # [C, H, W]
    @property
    def best_index(self) -> int: ...
    @property
    def seconds(self) -> float: ...

class Sam:
    """SAM ViT-B/L/H or MedSAM. encode() once, predict() many times; thread-safe."""
    @staticmethod
    def load(checkpoint: str, model_type: str = "vit_b", config: ConfigArg = None,
             precision: str = "fp32", force_precision: bool = False) -> "Sam": ...
    @staticmethod
    def random(model_type: str = "vit_b", config: ConfigArg = None, seed: int = 0,
               precision: str = "fp32", force_precision: bool = False) -> "Sam": ...
    @property
    def config(self) -> Dict[str, Any]: ...
    @property
    def precision(self) -> str: ...
    def encode(self, image: npt.NDArray[np.uint8]) -> ImageEmbedding:
        """image: HxWx3 uint8 RGB (or HxW grey)."""
    def predict(
        self,
        embedding: ImageEmbedding,
        *,
        points: Optional[ArrayLike] = None,
        labels: Optional[Sequence[int]] = None,
        box: Optional[Sequence[float]] = None,
        mask_input: Optional[npt.NDArray[np.float32]] = None,
        multimask: bool = False,
    ) -> SamResult:
        """points (N, 2) x, y original pixels; labels 1/0/-1 (default 1); box x0, y0, x1, y1;
        mask_input float32 [1, h, w] low-res logits."""
    def predict_boxes(
        self, embedding: ImageEmbedding, boxes: npt.NDArray[np.float32], multimask: bool = False
    ) -> SamResult: ...
    def generate_masks(
        self,
        image: npt.NDArray[np.uint8],
        *,
        points_per_side: int = ...,
        points_per_batch: int = ...,
        pred_iou_thresh: float = ...,
        stability_score_thresh: float = ...,
        stability_score_offset: float = ...,
        box_nms_thresh: float = ...,
        crop_n_layers: int = ...,
        crop_nms_thresh: float = ...,
        crop_overlap_ratio: float = ...,
        crop_n_points_downscale_factor: int = ...,
        min_mask_region_area: int = ...,
        output_type: str = ...,
        include_image_edge: bool = ...,
    ) -> List[Dict[str, Any]]:
        """Automatic masks (segment-anything's SamAutomaticMaskGenerator, as `nephroseg sam
        --auto`) of an HxWx3 uint8 RGB image. Defaults are samapi's (sam::AutomaskOptions;
        `nephroseg sam --help` shows them). Each dict: segmentation (HxW bool), area,
        bbox [x, y, w, h], predicted_iou, point_coords [[x, y]], stability_score,
        crop_box [x, y, w, h]."""

class Dinov2:
    """DINOv2 backbone (official dinov2_vit*14[_reg4]_pretrain.pth)."""
    @staticmethod
    def load(checkpoint: str, model_type: str = "vitg14", config: ConfigArg = None,
             precision: str = "fp32", force_precision: bool = False) -> "Dinov2": ...
    @staticmethod
    def random(model_type: str = "vits14", config: ConfigArg = None, seed: int = 0,
               precision: str = "fp32", force_precision: bool = False) -> "Dinov2": ...
    @staticmethod
    def preset_names() -> List[str]: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    @property
    def precision(self) -> str: ...
    def patch_features(
        self, image: npt.NDArray[np.uint8], size: int = 0
    ) -> Tuple[npt.NDArray[np.float32], int, int]:
        """(tokens float32 [gh*gw, D], gh, gw)."""

class GbmSeg:
    """GBMSeg one-shot segmentation: set_reference once, segment many targets."""
    def __init__(
        self,
        features: Union[Dinov2, str],
        segmenter: Union[Sam, str],
        *,
        preset: str = "",
        ablation: str = "",
        options: Optional[Dict[str, Any]] = None,
        mask_resize: str = "nearest",
        resize_to_original: bool = True,
        largest_contour: bool = False,
    ) -> None: ...
    def set_reference(self, image: npt.NDArray[np.uint8], mask: npt.NDArray[Any]) -> None: ...
    def add_reference(self, image: npt.NDArray[np.uint8], mask: npt.NDArray[Any]) -> None: ...
    @property
    def reference_count(self) -> int: ...
    def set_reference_working(
        self,
        image_working: npt.NDArray[np.uint8],
        mask_working: npt.NDArray[np.uint8],
        features: npt.NDArray[np.float32],
    ) -> None: ...
    @property
    def has_reference(self) -> bool: ...
    @property
    def reference_features(self) -> npt.NDArray[np.float32]: ...  # [G*G, D]
    @property
    def reference_image_working(self) -> npt.NDArray[np.uint8]: ...  # S x S x 3
    @property
    def reference_mask_working(self) -> npt.NDArray[np.uint8]: ...
    @property
    def reference_seconds(self) -> float: ...
    @property
    def size(self) -> int: ...
    def segment(self, target: npt.NDArray[np.uint8]) -> Dict[str, Any]:
        """dict: mask, mask_working, image_working, original_size, points [N, 2] float32,
        labels [N] int32, prompts (every stage), timings."""

def gbmseg_batch(
    reference_image: str,
    reference_mask: str,
    targets: str,
    out_dir: str,
    *,
    features: Union[Dinov2, str] = "dinov2",
    segmenter: Union[Sam, str] = "sam",
    dinov2_checkpoint: str = "",
    dinov2_type: str = "vitg14",
    dinov2_config: str = "",
    sam_checkpoint: str = "",
    sam_type: str = "vit_l",
    sam_config: str = "",
    ground_truth: str = "",
    preset: str = "",
    ablation: str = "",
    options: Optional[Dict[str, Any]] = None,
    mask_resize: str = "nearest",
    resize_to_original: bool = True,
    largest_contour: bool = False,
    overwrite: bool = False,
    progress: Optional[Callable[[int, int, Dict[str, Any]], None]] = None,
    more_references: Sequence[Tuple[str, str]] = (),
    measure: str = "auto",
    nm_per_pixel: str = "auto",
    thickness_range: str = "",
    shard: str = "",
    precision: str = "fp32",
    force_precision: bool = False,
) -> Dict[str, Any]: ...

class GlomSam:
    @staticmethod
    def load(checkpoint: str, config: ConfigArg = None, precision: str = "fp32",
             force_precision: bool = False) -> "GlomSam": ...
    @staticmethod
    def create(config: ConfigArg = "tiny", seed: int = 0) -> "GlomSam": ...
    @property
    def config(self) -> Dict[str, Any]: ...
    @property
    def precision(self) -> str: ...
    def save(self, path: str) -> None: ...
    def predict(
        self, image: npt.NDArray[np.uint8], box: Optional[Sequence[float]] = None, tile_overlap: int = 128
    ) -> Dict[str, Any]:
        """dict: mask uint8 0/1 [H, W], logits float32 [H, W], boxes, seconds."""

def measure_thickness(
    mask: npt.NDArray[Any],
    nm_per_pixel: float,
    *,
    sample_spacing_px: float = 4.0,
    seed: int = 0,
    smoothing_sigma_px: float = 1.0,
    max_angle_deg: float = 60.0,
    max_chord_px: float = 0.0,
    tangential_factor: float = 1.5,
    local_window: int = 12,
    border_margin_px: float = 2.0,
    spur_length_factor: float = 1.0,
    reference: str = "",
    name: str = "mask",
) -> Dict[str, Any]:
    """The <name>_summary.json of `nephroseg measure` (nm) plus 'measurements' arrays."""
def thickness_reference_ranges() -> List[Dict[str, Any]]: ...

def metrics(
    pred: npt.NDArray[Any], truth: npt.NDArray[Any], boundary_dilation_ratio: float = 0.02
) -> Dict[str, float]: ...
def summarize(values: Sequence[float]) -> Dict[str, float]: ...

def run_slide(
    slide: str,
    out_dir: str,
    *,
    segmenter: str = "classical",
    checkpoint: str = "",
    model_config: str = "",
    mpp: float = 0.0,
    magnification: float = 0.0,
    level: int = -1,
    tile: Optional[int] = None,
    halo: int = 128,
    tissue: str = "auto",
    roi: Optional[Sequence[int]] = None,
    object_type: str = "annotation",
    precision: str = "fp32",
    force_precision: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, Any]:
    """One slide, as `nephroseg slide`; tile None: from the model (input - 2 x halo), else 1024."""

def run_slides(
    folder: str,
    out_dir: str,
    *,
    segmenter: str = "classical",
    checkpoint: str = "",
    model_config: str = "",
    mpp: float = 0.0,
    magnification: float = 0.0,
    level: int = -1,
    tile: Optional[int] = None,
    halo: int = 128,
    tissue: str = "auto",
    roi: Optional[Sequence[int]] = None,
    object_type: str = "annotation",
    shard: str = "",
    precision: str = "fp32",
    force_precision: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, Any]:
    """A folder of slides, as `nephroseg slide --slide FOLDER`: slides, inputs_total, tile, run_json."""

def sam_batch(
    images: Sequence[str],
    out_dir: str,
    *,
    checkpoint: str,
    model_type: str = "vit_b",
    model_config: str = "",
    points: Optional[Sequence[Sequence[float]]] = None,
    box: Optional[Sequence[float]] = None,
    mask_input: str = "",
    multimask: bool = False,
    prompts_file: str = "",
    resume: bool = False,
    shard: str = "",
    precision: str = "fp32",
    force_precision: bool = False,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> Dict[str, Any]:
    """SAM / MedSAM over images, as `nephroseg sam`: inputs_total, segmented, skipped, out_dirs, run_json."""

def glomsam_predict(
    checkpoint: str,
    image: str,
    out_dir: str,
    *,
    config: str = "auto",
    box: Optional[Sequence[float]] = None,
    ground_truth: str = "",
    box_from_ground_truth: bool = False,
    overlap: int = 128,
    patch_size: int = 0,
    threshold: float = 0.5,
    resume: bool = False,
    shard: str = "",
    precision: str = "fp32",
    force_precision: bool = False,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> Dict[str, Any]:
    """GlomSAM over an image or a folder, as `nephroseg glomsam predict`: items, inputs_total, ..."""

def merge_shards(out_dir: str) -> Dict[str, Any]:
    """`nephroseg merge OUT` for any workload: command, shards, inputs, failed."""

def read_image(path: str, page: int = 0) -> npt.NDArray[np.uint8]: ...
def read_image_raw(path: str, page: int = 0) -> npt.NDArray[Any]: ...
def read_mask(path: str, channel: int = -1, threshold: float = 127.0) -> npt.NDArray[np.uint8]: ...
def write_mask(path: str, mask: npt.NDArray[Any]) -> None: ...
def write_image(path: str, image: npt.NDArray[np.uint8]) -> None: ...
