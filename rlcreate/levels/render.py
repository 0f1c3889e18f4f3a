"""Render level grids as PNG images with the Super Mario Bros tile art shipped in ``mario-gpt``.

Each tile id becomes the 16x16 image that ``mario_gpt/utils.py`` (``convert_level_to_png``) uses for
its VGLC character. The tiles are loaded once into an atlas ``(13, 16, 16, 3)``; a level is then
one fancy-indexing operation (``atlas[grid]``) and a reshape, with no per-tile pasting, so reports
can render hundreds of levels quickly. Transparent tile pixels are composited over the sky tile,
and the one tile that is not 16x16 (``smb-unpassable.png`` is 16x15) is resized to 16x16.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rlcreate.errors import UserError
from rlcreate.levels.corpus import mario_gpt_dir
from rlcreate.levels.tiles import HEIGHT, TILES
from rlcreate.levels.validity import check_grid

__all__ = [
    "TILE_SIZE",
    "TILE_FILES",
    "tile_atlas",
    "level_pixels",
    "render_level",
    "render_montage",
    "MAX_RENDER_PIXELS",
    "RenderSizeError",
    "RenderOutputError",
]

TILE_SIZE = 16
#: Largest image rendered (pixels): 4,000 columns at scale 1 (about 170 MB of RGB). Bigger levels
#: or scales are refused before allocating, so a huge level file cannot exhaust memory.
MAX_RENDER_PIXELS = 4000 * TILE_SIZE * HEIGHT * TILE_SIZE


class RenderSizeError(UserError):
    """A level (or scale) whose image would be too large to render."""


class RenderOutputError(UserError):
    """The image cannot be written where asked (a folder, a missing folder, an unknown extension)."""


def _save(image: Image.Image, path: str | Path) -> None:
    import errno

    from rlcreate.runbox import atomic_target

    try:
        with atomic_target(path) as tmp:  # never writes through a link; a kill leaves the old image
            image.save(tmp)
    except (OSError, ValueError, KeyError) as exc:  # PIL: unknown extension is ValueError/KeyError
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            raise  # the command line names the path and the fix
        raise RenderOutputError(
            f"cannot write the image to {str(path)!r} ({type(exc).__name__}: {exc}); "
            "give a file path ending in .png in an existing folder"
        ) from None


def _check_size(width: int, scale: int = 1, what: str = "level") -> None:
    pixels = width * TILE_SIZE * HEIGHT * TILE_SIZE * int(scale) ** 2
    if pixels > MAX_RENDER_PIXELS:
        raise RenderSizeError(
            f"a {width:,}-column {what} at scale {scale} is {pixels:,} pixels, over the "
            f"{MAX_RENDER_PIXELS:,} rendered at most; render a window of it (grid[:, a:b])"
        )


#: image file (in ``mario_gpt/data/tiles``) per VGLC character, as in mario_gpt's convert_level_to_png.
TILE_FILES = {
    "-": "smb-background.png",
    "X": "smb-unpassable.png",
    "S": "smb-breakable.png",
    "?": "smb-question.png",
    "Q": "smb-question.png",
    "o": "smb-coin.png",
    "E": "smb-enemy.png",
    "<": "smb-tube-top-left.png",
    ">": "smb-tube-top-right.png",
    "[": "smb-tube-lower-left.png",
    "]": "smb-tube-lower-right.png",
    "B": "cannon_top.png",
    "b": "cannon_bottom.png",
}
_BACKGROUND = (255, 255, 255)  # montage padding and label bands


@functools.lru_cache(maxsize=1)
def tile_atlas() -> np.ndarray:
    """``uint8`` array ``(len(TILES), 16, 16, 3)``: the RGB image of each tile id (read-only)."""
    tile_dir = mario_gpt_dir() / "data" / "tiles"
    size = (TILE_SIZE, TILE_SIZE)
    sky = Image.open(tile_dir / TILE_FILES["-"]).convert("RGBA").resize(size, Image.Resampling.NEAREST)
    images = []
    for ch in TILES:
        tile = Image.open(tile_dir / TILE_FILES[ch]).convert("RGBA").resize(size, Image.Resampling.NEAREST)
        images.append(np.asarray(Image.alpha_composite(sky, tile).convert("RGB")))
    atlas = np.stack(images)
    atlas.setflags(write=False)
    return atlas


def level_pixels(grid) -> np.ndarray:
    """``uint8`` RGB array ``(16*14, 16*W, 3)`` of one level."""
    g = check_grid(grid)
    _check_size(g.shape[1])
    tiles = tile_atlas()[g.astype(np.intp)]  # (14, W, 16, 16, 3)
    h, w = g.shape
    return tiles.transpose(0, 2, 1, 3, 4).reshape(h * TILE_SIZE, w * TILE_SIZE, 3)


def _scaled(pixels: np.ndarray, scale: int) -> np.ndarray:
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer (pixel repeat factor), got {scale!r}")
    if scale == 1:
        return pixels
    return pixels.repeat(scale, axis=0).repeat(scale, axis=1)


def render_level(grid, path: str | Path | None = None, scale: int = 1) -> Image.Image:
    """Image of one level, ``16*W*scale`` wide and ``16*14*scale`` high; saved to ``path`` if given."""
    g = check_grid(grid)
    _check_size(g.shape[1], scale if isinstance(scale, (int, np.integer)) and scale >= 1 else 1)
    image = Image.fromarray(_scaled(level_pixels(g), scale))
    if path is not None:
        _save(image, path)
    return image


def render_montage(
    grids: Sequence | np.ndarray,
    path: str | Path | None = None,
    ncols: int = 4,
    labels: Sequence[str] | None = None,
    pad: int = 8,
    scale: int = 1,
) -> Image.Image:
    """Many levels in a grid of ``ncols`` columns, each optionally captioned; saved if ``path`` given.

    Levels may have different widths; each cell is as wide as the widest level. With ``labels``,
    a text band of 12 pixels is drawn above every level. Size: ``ncols*cell_w + (ncols+1)*pad``
    wide and ``nrows*(cell_h + label_h) + (nrows+1)*pad`` high, ``cell_h = 16*14*scale``.
    """
    grids = list(grids)
    if not grids:
        raise ValueError("render_montage needs at least one level, got an empty sequence")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0 pixels, got {pad}")
    if labels is not None and len(labels) != len(grids):
        raise ValueError(f"got {len(labels)} labels for {len(grids)} levels; pass one label per level or none")
    _check_size(
        max(check_grid(g).shape[1] for g in grids) * len(grids),
        scale if isinstance(scale, (int, np.integer)) and scale >= 1 else 1,
        "montage",
    )
    pictures = [_scaled(level_pixels(g), scale) for g in grids]
    cell_w = max(p.shape[1] for p in pictures)
    cell_h = HEIGHT * TILE_SIZE * scale
    label_h = 12 if labels is not None else 0
    ncols = min(ncols, len(pictures))
    nrows = -(-len(pictures) // ncols)
    canvas = np.empty((nrows * (cell_h + label_h) + (nrows + 1) * pad, ncols * cell_w + (ncols + 1) * pad, 3), np.uint8)
    canvas[:] = _BACKGROUND
    origins = []
    for i, pic in enumerate(pictures):
        row, col = divmod(i, ncols)
        x = pad + col * (cell_w + pad)
        y = pad + row * (cell_h + label_h + pad)
        canvas[y + label_h : y + label_h + cell_h, x : x + pic.shape[1]] = pic
        origins.append((x, y))
    image = Image.fromarray(canvas)
    if labels is not None:
        draw = ImageDraw.Draw(image)
        for (x, y), text in zip(origins, labels):
            draw.text((x, y), str(text), fill=(0, 0, 0))
    if path is not None:
        _save(image, path)
    return image
