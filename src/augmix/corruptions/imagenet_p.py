"""ImageNet-P: perturbation videos of ImageNet validation images, in the released layout.

Restates the build of hendrycks/robustness `ImageNet-P/create_p/make_imagenet_p.py`: every
validation image is resized so its shorter side is 256 (PIL bilinear, then converted to RGB), the
sequence is built with the "imagenet" table of `perturbations.PARAMS` (pixel-wise, blur and weather
perturbations on CenterCrop(224), geometric ones on the whole 256 image with every frame
centre-cropped), and written as `<out>/<perturbation>[_2|_3]/<wnid>/<stem>.<format>`; `_2`, `_3`
are the harder noise variants (difficulty 2, 3).

Video formats (an explicit choice, recorded in the manifest):

* "npy": lossless, uint8 (T, crop, crop, 3) RGB per video. Byte-identical across re-runs. Use it
  to measure flip rates of our sequences without codec noise; it is large (4.7 MB per 31-frame
  224x224 video, about 233 GB per perturbation for the 50,000 validation images).
* "mp4": the released layout. Lossy, and lossy re-encoding changes flip rates. Encoders:
  - "libx264": an `ffmpeg` binary with libx264 (on PATH, or the one bundled in the optional
    `imageio-ffmpeg` package). Same settings as the release: 1 frame per second, preset
    veryslow, CRF 20, and `-tune grain` with the default CRF (23) for the noise perturbations;
    pixel format pinned to yuv444p, which is what ffmpeg picks for RGB input when none is given
    (the release gave none; its frames were RGB PNGs). The release used a static ffmpeg 4.0.2,
    so bitstreams differ from it even here (another x264 version).
  - "mp4v": OpenCV's `VideoWriter` with MPEG-4 Part 2 (FourCC mp4v), the only MP4 encoder in
    the opencv-python-headless wheel (its FFmpeg has no libx264; "avc1" fails to open). NOT the
    official codec: no quality setting (OpenCV's default bit rate), 4:2:0 chroma, visibly lossier
    than libx264 CRF 20 (mean absolute error a few grey levels on 224x224 frames, several times
    libx264's). Use for layout compatibility only.
  - "auto": libx264 when such an ffmpeg is found, else mp4v.
  Reading back (`read_video`) follows `ImageNet-P/utils/video_loader.py`: OpenCV VideoCapture,
  BGR to RGB.

Reproducibility: images are indexed in sorted (wnid, file name) order; every (perturbation,
difficulty, image index) has its own generator, seeded by augmix.rng.derive_seed from the
perturbation's name, the seed, the difficulty and the image index (`image_rng`), so the bytes (npy)
do not depend on batching, on the other perturbations built or on their order, nor on where a
perturbation sits in PERTURBATIONS. The reference was
unseeded. Atomicity: each `<variant>` folder is built in a temporary folder beside it and renamed
into place when all variants are done (`augmix.io.atomic_dir`); `manifest.json` is removed first
and written last.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from augmix import io
from augmix.io import atomic_dir
from augmix.memory import keep_freed_memory
from augmix.rng import derive_seed

from .build import MANIFEST
from .perturbations import (
    FULL_IMAGE,
    NOISE_PERTURBATIONS,
    PERTURBATIONS,
    TEST_PERTURBATIONS,
    center_crop,
    sequence_length,
)

__all__ = [
    "ENCODERS",
    "FORMATS",
    "IMAGENET_P_TEST",
    "VARIANTS",
    "build_imagenet_p_folder",
    "find_ffmpeg",
    "image_rng",
    "imagenet_p_sequences",
    "list_image_folder",
    "parse_variant",
    "read_video",
    "resize_shorter",
    "resolve_encoder",
    "variant_name",
    "write_video",
]

IMAGENET_P_TEST = TEST_PERTURBATIONS  # the 10 test perturbations (mFR, mT5D)
# Every folder of the released layout: the 14 perturbations and the harder noise variants.
VARIANTS: tuple[str, ...] = tuple(PERTURBATIONS) + tuple(
    f"{n}_{d}" for n in NOISE_PERTURBATIONS for d in (2, 3)
)
FORMATS = ("npy", "mp4")
ENCODERS = ("auto", "libx264", "mp4v")
# 2: generators keyed by perturbation name (1 by position in PERTURBATIONS)
FORMAT_VERSION = 2
SEEDING = "numpy default_rng(augmix.rng.derive_seed('imagenet-p/<perturbation>', seed, difficulty, image index))"
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}


# ----------------------------------------------------------------------------------------------
# names


def variant_name(name: str, difficulty: int = 1) -> str:
    """Folder name of a perturbation at a difficulty: "shot_noise", "shot_noise_2", ..."""
    if name not in PERTURBATIONS:
        raise KeyError(
            f"unknown perturbation {name!r}; expected one of {list(PERTURBATIONS)}"
        )
    if difficulty == 1:
        return name
    if name not in NOISE_PERTURBATIONS or difficulty not in (2, 3):
        raise ValueError(
            f"only the noise perturbations {NOISE_PERTURBATIONS} have difficulty 2 and 3 "
            f"variants, got {name!r} at {difficulty!r}"
        )
    return f"{name}_{difficulty}"


def parse_variant(variant: str) -> tuple[str, int]:
    """("shot_noise_2") -> ("shot_noise", 2); ("rotate") -> ("rotate", 1)."""
    if variant not in VARIANTS:
        raise KeyError(
            f"unknown ImageNet-P folder {variant!r}; expected one of {list(VARIANTS)}"
        )
    if variant in PERTURBATIONS:
        return variant, 1
    name, d = variant.rsplit("_", 1)
    return name, int(d)


# ----------------------------------------------------------------------------------------------
# images and sequences


def resize_shorter(image, size: int = 256) -> np.ndarray:
    """torchvision Resize(size) of a PIL image (or path, or uint8 array), then RGB, as the
    reference: shorter side -> size, longer side -> int(size * long / short), PIL bilinear."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            im.load()
            return resize_shorter(im, size)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    if short != size:  # torchvision leaves an image of the right size untouched
        new_long = int(size * long / short)
        image = image.resize(
            (size, new_long) if w <= h else (new_long, size), Image.BILINEAR
        )
    return np.asarray(image.convert("RGB"))


def image_rng(seed: int, name: str, difficulty: int, index: int) -> np.random.Generator:
    """The generator of one (perturbation, difficulty, image index) cell, keyed by name."""
    if name not in PERTURBATIONS:
        raise KeyError(f"unknown perturbation {name!r}; expected one of {list(PERTURBATIONS)}")
    return np.random.default_rng(derive_seed(f"imagenet-p/{name}", int(seed), int(difficulty), int(index)))


def imagenet_p_sequences(
    images: Sequence[np.ndarray], variant: str, rngs=None, *, crop: int = 224
) -> np.ndarray:
    """uint8 (N, T, crop, crop, 3) videos of resized images (each uint8 (H, W, 3), sizes may
    differ). Pixel-wise, blur and weather perturbations run batched on the centre crops; the
    geometric ones run per image on the whole image. rngs: one generator per image (random
    perturbations only)."""
    name, difficulty = parse_variant(variant)
    fn = PERTURBATIONS[name]
    n = len(images)
    if rngs is not None and len(rngs) != n:
        raise ValueError(f"need one generator per image ({n}), got {len(rngs)}")
    if n == 0:
        return np.zeros((0, sequence_length(name, "imagenet"), crop, crop, 3), np.uint8)
    if name in FULL_IMAGE:
        return np.concatenate(
            [
                fn(
                    np.asarray(img)[None],
                    None,
                    difficulty=difficulty,
                    table="imagenet",
                    crop=crop,
                )
                for img in images
            ]
        )
    crops = np.stack([np.asarray(center_crop(np.asarray(img), crop)) for img in images])
    return fn(crops, rngs, difficulty=difficulty, table="imagenet", crop=None)


def list_image_folder(folder) -> list[tuple[str, str, Path]]:
    """(wnid, file name, path) of an ImageNet-style `<wnid>/<file>` folder, sorted by wnid then
    file name (the reference sorted the wnids only; sorting both makes the indices stable)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    items = []
    for d in sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        for f in sorted(d.iterdir()):
            if (
                f.is_file()
                and not f.name.startswith(".")
                and f.suffix.lower() in _IMAGE_SUFFIXES
            ):
                items.append((d.name, f.name, f))
    return items


# ----------------------------------------------------------------------------------------------
# video files


@functools.cache
def find_ffmpeg() -> str | None:
    """Path of an ffmpeg binary that has the libx264 encoder: `ffmpeg` on PATH, else the one of
    the optional imageio-ffmpeg package. None when there is none."""
    candidates = [shutil.which("ffmpeg")]
    try:
        import imageio_ffmpeg

        candidates.append(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):  # not installed, or its binary missing
        pass
    for exe in candidates:
        if not exe:
            continue
        try:
            res = subprocess.run(
                [exe, "-hide_banner", "-encoders"],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if res.returncode == 0 and " libx264 " in res.stdout:
            return exe
    return None


def _ffmpeg_version(exe: str) -> str:
    res = subprocess.run(
        [exe, "-version"], check=False, capture_output=True, text=True, timeout=60
    )
    return res.stdout.splitlines()[0] if res.stdout else "unknown"


def resolve_encoder(encoder: str) -> str:
    """The encoder to use: "auto" is "libx264" when find_ffmpeg() finds one, else "mp4v"."""
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {ENCODERS}")
    if encoder == "auto":
        return "libx264" if find_ffmpeg() else "mp4v"
    if encoder == "libx264" and find_ffmpeg() is None:
        raise RuntimeError(
            "encoder 'libx264' needs an ffmpeg binary with libx264: put one on PATH (e.g. Debian's "
            "ffmpeg package) or pip install imageio-ffmpeg; or use encoder='mp4v' (not the "
            "official codec) or format='npy' (lossless)"
        )
    return encoder


def _libx264_args(noise: bool) -> list[str]:
    # The release: `-vcodec libx264 -crf 20 -preset veryslow`; noise: `-tune grain -preset
    # veryslow` (default CRF 23).
    quality = ["-tune", "grain"] if noise else ["-crf", "20"]
    return ["-c:v", "libx264", "-preset", "veryslow", *quality, "-pix_fmt", "yuv444p"]


def _write_mp4_libx264(path: Path, frames: np.ndarray, noise: bool) -> None:
    _, h, w, _ = frames.shape
    cmd = [
        find_ffmpeg(),
        "-hide_banner",
        "-loglevel", "error",
        "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", "1",
        "-i", "-",
        *_libx264_args(noise),
        str(path),
    ]  # fmt: skip
    data = np.ascontiguousarray(frames).tobytes()
    res = subprocess.run(cmd, input=data, check=False, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(
            f"ffmpeg failed on {path}: {res.stderr.decode(errors='replace')}"
        )


def _write_mp4_opencv(path: Path, frames: np.ndarray) -> None:
    import cv2

    _, h, w, _ = frames.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1.0, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open an mp4v writer for {path}")
    try:
        for f in frames:
            writer.write(np.ascontiguousarray(f[..., ::-1]))  # RGB -> BGR
    finally:
        writer.release()


def write_video(
    path,
    frames: np.ndarray,
    *,
    format: str = "npy",
    encoder: str = "auto",
    noise: bool = False,
) -> Path:
    """Write uint8 (T, H, W, 3) RGB frames to `path` (".npy" / ".mp4" appended unless present).
    noise: the sequence is a noise perturbation (libx264 then uses `-tune grain`, as released)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {FORMATS}")
    path = Path(path)
    if path.suffix != f".{format}":  # append, so a stem with dots keeps them
        path = path.with_name(f"{path.name}.{format}")
    if format == "npy":
        np.save(path, np.ascontiguousarray(frames), allow_pickle=False)
        return path
    writers = {
        "libx264": lambda: _write_mp4_libx264(path, frames, noise),
        "mp4v": lambda: _write_mp4_opencv(path, frames),
    }
    writers[resolve_encoder(encoder)]()
    return path


def read_video(path) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB frames of a .npy or .mp4 video (mp4: OpenCV VideoCapture, BGR to
    RGB, as ImageNet-P/utils/video_loader.py)."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix != ".mp4":
        raise ValueError(
            f"unknown video format {path.suffix!r} of {path}; expected .npy or .mp4"
        )
    import cv2

    if not path.is_file():
        raise FileNotFoundError(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RuntimeError(f"OpenCV could not open {path}")
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame[..., ::-1])
    finally:
        cap.release()
    if not frames:
        raise RuntimeError(f"no frames decoded from {path}")
    return np.ascontiguousarray(np.stack(frames))


# ----------------------------------------------------------------------------------------------
# the folder


def _items(source) -> list[tuple[str, str, object]]:
    items = (
        list_image_folder(source) if isinstance(source, (str, Path)) else list(source)
    )
    seen = set()
    for item in items:
        if len(item) != 3:
            raise ValueError(
                f"source items must be (wnid, file name, image), got {item!r}"
            )
        key = (item[0], Path(item[1]).stem)
        if key in seen:
            raise ValueError(f"two images would write the same video {key[0]}/{key[1]}")
        seen.add(key)
    return items


def build_imagenet_p_folder(
    source,
    out_dir,
    *,
    names: Iterable[str] = IMAGENET_P_TEST,
    seed: int,
    resize: int = 256,
    crop: int = 224,
    format: str = "npy",
    encoder: str = "auto",
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ImageNet-P videos `<out_dir>/<variant>/<wnid>/<stem>.<format>` and `manifest.json`.

    source: an ImageNet-style folder `<wnid>/<file>` (sorted by wnid, then file name), or an
    iterable of (wnid, file name, image) with image a path, PIL image or uint8 (H, W, 3) array,
    not yet resized (its position is its index). names: folder names from VARIANTS, e.g.
    "gaussian_noise", "gaussian_noise_2". format: "npy" (lossless) or "mp4" (see the module
    docstring for the encoders). batch: images resized and perturbed together (memory only; the
    output does not depend on it). progress(done, total) is called after every batch.
    """
    names = list(names)
    for v in names:
        parse_variant(v)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate perturbation names in {names}")
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {FORMATS}")
    if not 0 < crop <= resize:
        raise ValueError(f"need 0 < crop <= resize, got crop {crop}, resize {resize}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    codec = resolve_encoder(encoder) if format == "mp4" else None
    items = _items(source)
    keep_freed_memory()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        manifest_path.unlink()  # from here until the end, the folder does not pass as complete
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmps = {v: stack.enter_context(atomic_dir(root / v)) for v in names}
        for start in range(0, len(items), batch):
            part = items[start : start + batch]
            images = [resize_shorter(img, resize) for _, _, img in part]
            for v in names:
                name, difficulty = parse_variant(v)
                rngs = [
                    image_rng(seed, name, difficulty, start + k)
                    for k in range(len(part))
                ]
                videos = imagenet_p_sequences(images, v, rngs, crop=crop)
                for (wnid, fname, _), video in zip(part, videos):
                    folder = tmps[v] / wnid
                    folder.mkdir(exist_ok=True)
                    write_video(
                        folder / Path(fname).stem,
                        video,
                        format=format,
                        encoder=codec or encoder,
                        noise=name in NOISE_PERTURBATIONS,
                    )
            if progress is not None:
                progress(start + len(part), len(items))
    encoding = None
    if codec == "libx264":
        exe = find_ffmpeg()
        encoding = {
            "encoder": "libx264",
            "ffmpeg": _ffmpeg_version(exe),
            "args": _libx264_args(False),
            "noise_args": _libx264_args(True),
            "framerate": 1,
        }
    elif codec == "mp4v":
        import cv2

        encoding = {
            "encoder": "mp4v",
            "opencv": cv2.__version__,
            "note": "MPEG-4 Part 2 through OpenCV VideoWriter, not the official libx264",
            "framerate": 1,
        }
    manifest = {
        "format": "imagenet-p",
        "format_version": FORMAT_VERSION,
        "video_format": format,
        "encoding": encoding,
        "seed": int(seed),
        "seeding": SEEDING,
        "resize": int(resize),
        "crop": int(crop),
        "names": names,
        "frames": {v: sequence_length(parse_variant(v)[0], "imagenet") for v in names},
        "n_images": len(items),
        "files": {},
    }
    io.write_bytes(manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return {**manifest, "out_dir": str(root), "seconds": time.perf_counter() - t0}
