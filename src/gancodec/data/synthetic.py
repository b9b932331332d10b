"""Synthetic training and test images of what people store besides photos (issue 20).

Screen content (UI panels, buttons, menus, tables), documents (paragraphs on white), charts
(matplotlib), line art, and flat, saturated "studio / product" images (smooth gradients, flat
saturated backgrounds with shaded objects and soft shadows). Text uses the fonts that ship
with matplotlib (DejaVu Sans / Serif / Mono and their bold / italic faces, STIX, Computer
Modern), so the same seed draws the same pixels on any machine with the same Pillow and
matplotlib versions.

Every image is drawn from its own generator, seeded by ``(seed, kind index, index)``, at a
``scale`` of 1 or 2 (a 2x "HiDPI" rendering: fonts, strokes and paddings twice as large on
the same canvas). ``generate_set`` writes PNGs and returns one row per image; the file name
holds the kind, the scale and the index, and the sha256 of the file is the content hash the
split uses.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..errors import DataError

#: Kinds of synthetic image, and the content class each belongs to in the per-class report.
KIND_CLASS = {
    "ui": "screen",
    "table": "screen",
    "document": "document",
    "chart": "graphics",
    "lineart": "graphics",
    "studio": "studio",
}
KINDS = tuple(KIND_CLASS)
CLASSES = tuple(dict.fromkeys(KIND_CLASS.values()))

_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her all she there would their we him been has when who will more no if out so said what up its about "
    "into than them can only other new some could time these two may then do first any my now such like our over man "
    "me even most made after also did many before must through back years where much your way well down should "
    "because each just those people image codec bitstream quality render export upload settings account profile "
    "report invoice total amount status pending complete server cluster latency throughput revenue quarter growth "
    "margin budget forecast dashboard analytics overview details search filter sort download share delete archive"
).split()
_LABELS = ("File", "Edit", "View", "Tools", "Help", "Home", "Search", "Settings", "Save", "Cancel", "OK", "Open",
           "Export", "Share", "Next", "Back", "Submit", "Apply", "Reset", "Close", "Profile", "Inbox", "Sent")


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """The TrueType files shipped with matplotlib, sorted (the same list everywhere)."""
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    skip = ("cmex", "cmsy", "STIXNonUni", "STIXSiz", "LastResort", "DejaVuSansDisplay", "DejaVuSerifDisplay")
    files = sorted(str(p) for p in root.glob("*.ttf") if not p.name.startswith(skip))
    if not files:
        raise DataError(f"synthetic: no .ttf fonts under {root}; reinstall matplotlib")
    return tuple(files)


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@dataclass
class _Ctx:
    rng: np.random.Generator
    w: int
    h: int
    scale: int

    def s(self, v: float) -> int:
        return max(1, int(round(v * self.scale)))

    def font(self, size_px: float, mono: bool = False) -> ImageFont.FreeTypeFont:
        files = font_files()
        if mono:
            files = tuple(f for f in files if "Mono" in f or "cmtt" in f) or files
        return _font(files[int(self.rng.integers(len(files)))], self.s(size_px))

    def words(self, n: int) -> str:
        return " ".join(_WORDS[i] for i in self.rng.integers(0, len(_WORDS), n))

    def colour(self, sat: tuple[float, float] = (0.4, 1.0), val: tuple[float, float] = (0.3, 1.0)) -> tuple:
        import colorsys

        r, g, b = colorsys.hsv_to_rgb(self.rng.random(), self.rng.uniform(*sat), self.rng.uniform(*val))
        return int(r * 255), int(g * 255), int(b * 255)

    def grey(self, lo: int, hi: int) -> tuple:
        v = int(self.rng.integers(lo, hi + 1))
        return v, v, v


def _contrast_text_colour(c: _Ctx, bg: tuple) -> tuple:
    light = sum(bg) / 3 > 140
    if c.rng.random() < 0.6:
        return c.grey(0, 60) if light else c.grey(215, 255)
    return c.colour(sat=(0.5, 1.0), val=(0.2, 0.55) if light else (0.85, 1.0))


def _draw_text(c: _Ctx, d: ImageDraw.ImageDraw, xy: tuple, text: str, font, fill) -> None:
    d.text(xy, text, font=font, fill=fill)


def _ui(c: _Ctx) -> Image.Image:
    dark = c.rng.random() < 0.35
    bg = c.grey(18, 45) if dark else c.grey(235, 255)
    img = Image.new("RGB", (c.w, c.h), bg)
    d = ImageDraw.Draw(img)
    d.fontmode = "1" if c.rng.random() < 0.15 else "L"  # some UIs draw text without anti-aliasing
    accent = c.colour(sat=(0.55, 1.0), val=(0.55, 0.95))
    # title bar and menu
    bar_h = c.s(c.rng.integers(22, 34))
    bar = accent if c.rng.random() < 0.5 else (c.grey(50, 70) if dark else c.grey(215, 235))
    d.rectangle([0, 0, c.w, bar_h], fill=bar)
    x = c.s(8)
    f = c.font(c.rng.integers(10, 15))
    for label in c.rng.choice(_LABELS, size=int(c.rng.integers(3, 7)), replace=False):
        _draw_text(c, d, (x, bar_h // 4), str(label), f, _contrast_text_colour(c, bar))
        x += int(d.textlength(str(label), font=f)) + c.s(14)
    # sidebar
    side_w = int(c.w * c.rng.uniform(0.18, 0.3)) if c.rng.random() < 0.7 else 0
    if side_w:
        side = c.grey(30, 55) if dark else c.grey(225, 245)
        d.rectangle([0, bar_h, side_w, c.h], fill=side)
        y = bar_h + c.s(10)
        f = c.font(c.rng.integers(10, 14))
        sel = int(c.rng.integers(0, 6))
        for i in range(int(c.rng.integers(5, 14))):
            row_h = c.s(22)
            if i == sel:
                d.rectangle([0, y - c.s(3), side_w, y + row_h - c.s(5)], fill=accent)
            if c.rng.random() < 0.6:  # an icon
                ic = c.colour()
                r = c.s(5)
                d.ellipse([c.s(8), y + c.s(2), c.s(8) + 2 * r, y + c.s(2) + 2 * r], fill=ic)
            _draw_text(c, d, (c.s(24), y), c.words(int(c.rng.integers(1, 3))).title(), f,
                       _contrast_text_colour(c, accent if i == sel else side))
            y += row_h
            if y > c.h:
                break
    # content: cards with text, buttons, inputs, toggles, progress bars
    y = bar_h + c.s(12)
    x0 = side_w + c.s(12)
    while y < c.h - c.s(30):
        card_h = c.s(c.rng.integers(60, 140))
        card = c.grey(40, 65) if dark else (255, 255, 255) if c.rng.random() < 0.7 else c.grey(240, 250)
        radius = c.s(c.rng.integers(0, 10))
        d.rounded_rectangle([x0, y, c.w - c.s(12), y + card_h], radius=radius, fill=card,
                            outline=c.grey(70, 90) if dark else c.grey(200, 225), width=c.s(1))
        f_head = c.font(c.rng.integers(13, 20))
        _draw_text(c, d, (x0 + c.s(10), y + c.s(8)), c.words(int(c.rng.integers(2, 5))).capitalize(), f_head,
                   _contrast_text_colour(c, card))
        f_body = c.font(c.rng.integers(9, 13))
        ty = y + c.s(32)
        while ty < y + card_h - c.s(34):
            _draw_text(c, d, (x0 + c.s(10), ty), c.words(int(c.rng.integers(4, 12))), f_body,
                       c.grey(150, 190) if dark else c.grey(60, 110))
            ty += int(f_body.size * 1.4)
        bx = x0 + c.s(10)
        by = y + card_h - c.s(30)
        for _ in range(int(c.rng.integers(0, 4))):
            kind = c.rng.integers(0, 4)
            if kind == 0:  # button
                label = str(c.rng.choice(_LABELS))
                fb = c.font(c.rng.integers(10, 13))
                tw = int(d.textlength(label, font=fb))
                fill = accent if c.rng.random() < 0.6 else c.colour(val=(0.5, 0.95))
                d.rounded_rectangle([bx, by, bx + tw + c.s(20), by + c.s(22)], radius=c.s(4), fill=fill)
                _draw_text(c, d, (bx + c.s(10), by + c.s(4)), label, fb, _contrast_text_colour(c, fill))
                bx += tw + c.s(30)
            elif kind == 1:  # input field
                iw = c.s(c.rng.integers(80, 160))
                d.rectangle([bx, by, bx + iw, by + c.s(22)], fill=card, outline=c.grey(120, 180), width=c.s(1))
                _draw_text(c, d, (bx + c.s(5), by + c.s(4)), c.words(2), c.font(11), c.grey(120, 160))
                bx += iw + c.s(10)
            elif kind == 2:  # toggle
                d.rounded_rectangle([bx, by + c.s(3), bx + c.s(34), by + c.s(19)], radius=c.s(8), fill=accent)
                d.ellipse([bx + c.s(19), by + c.s(5), bx + c.s(31), by + c.s(17)], fill=(255, 255, 255))
                bx += c.s(44)
            else:  # progress bar
                pw = c.s(c.rng.integers(60, 140))
                d.rectangle([bx, by + c.s(8), bx + pw, by + c.s(14)], fill=c.grey(200, 220))
                d.rectangle([bx, by + c.s(8), bx + int(pw * c.rng.random()), by + c.s(14)], fill=accent)
                bx += pw + c.s(10)
            if bx > c.w - c.s(60):
                break
        y += card_h + c.s(c.rng.integers(8, 16))
    return img


def _table(c: _Ctx) -> Image.Image:
    img = Image.new("RGB", (c.w, c.h), (255, 255, 255) if c.rng.random() < 0.8 else c.grey(235, 250))
    d = ImageDraw.Draw(img)
    f = c.font(c.rng.integers(9, 14), mono=c.rng.random() < 0.3)
    head = c.colour(sat=(0.3, 0.9), val=(0.3, 0.9))
    stripe = c.colour(sat=(0.03, 0.15), val=(0.93, 1.0))
    line = c.grey(150, 215)
    row_h = int(f.size * c.rng.uniform(1.5, 2.1))
    ncol = int(c.rng.integers(3, 8))
    edges = np.sort(c.rng.uniform(0, 1, ncol - 1))
    xs = [c.s(4)] + [int(c.s(4) + e * (c.w - c.s(8))) for e in edges] + [c.w - c.s(4)]
    y = c.s(4)
    r = 0
    grid = c.rng.random() < 0.5
    while y + row_h < c.h:
        fill = head if r == 0 else (stripe if r % 2 == 0 and c.rng.random() < 0.9 else img.getpixel((0, 0)))
        d.rectangle([xs[0], y, xs[-1], y + row_h], fill=fill)
        for j in range(ncol):
            if r == 0:
                text = c.words(1).capitalize()
            elif j == 0 or c.rng.random() < 0.3:
                text = c.words(int(c.rng.integers(1, 3)))
            else:
                text = f"{c.rng.normal(0, 10 ** c.rng.integers(1, 5)):,.{int(c.rng.integers(0, 3))}f}"
            colour = _contrast_text_colour(c, fill) if r == 0 else (
                (200, 30, 30) if text.startswith("-") and c.rng.random() < 0.5 else c.grey(0, 70))
            d.text((xs[j] + c.s(4), y + (row_h - f.size) // 2), text, font=f, fill=colour)
        if grid or r == 0:
            d.line([xs[0], y + row_h, xs[-1], y + row_h], fill=line, width=1)
        y += row_h
        r += 1
    if grid:
        for x in xs:
            d.line([x, c.s(4), x, y], fill=line, width=1)
    return img


def _document(c: _Ctx) -> Image.Image:
    paper = (255, 255, 255) if c.rng.random() < 0.75 else c.colour(sat=(0.0, 0.08), val=(0.9, 1.0))
    img = Image.new("RGB", (c.w, c.h), paper)
    d = ImageDraw.Draw(img)
    files = font_files()
    body_font = files[int(c.rng.integers(len(files)))]
    size = float(c.rng.uniform(8, 14))
    margin = c.s(c.rng.integers(12, 40))
    ink = c.grey(0, 40) if c.rng.random() < 0.85 else c.colour(sat=(0.5, 1.0), val=(0.2, 0.5))
    y = margin
    while y < c.h - margin:
        r = c.rng.random()
        if r < 0.15:  # heading
            fh = c.font(size * c.rng.uniform(1.4, 2.2))
            d.text((margin, y), c.words(int(c.rng.integers(2, 6))).title(), font=fh,
                   fill=ink if c.rng.random() < 0.6 else c.colour(val=(0.3, 0.7)))
            y += int(fh.size * 1.6)
            continue
        if r < 0.2:  # a rule or a highlighted box
            if c.rng.random() < 0.5:
                d.line([margin, y, c.w - margin, y], fill=c.grey(120, 200), width=c.s(1))
                y += c.s(8)
            else:
                bh = c.s(c.rng.integers(30, 70))
                d.rectangle([margin, y, c.w - margin, y + bh], fill=c.colour(sat=(0.05, 0.3), val=(0.9, 1.0)),
                            outline=c.colour(val=(0.4, 0.8)))
                d.text((margin + c.s(6), y + c.s(6)), c.words(8), font=_font(body_font, c.s(size)), fill=ink)
                y += bh + c.s(8)
            continue
        f = _font(body_font, c.s(size))
        lines = int(c.rng.integers(3, 10))
        for _ in range(lines):  # a paragraph, wrapped to the text width
            text = ""
            while True:
                nxt = (text + " " + c.words(1)).strip()
                if d.textlength(nxt, font=f) > c.w - 2 * margin:
                    break
                text = nxt
            d.text((margin, y), text, font=f, fill=ink)
            y += int(f.size * c.rng.uniform(1.15, 1.5))
            if y > c.h - margin:
                break
        y += int(f.size * 0.8)
    return img


def _chart(c: _Ctx) -> Image.Image:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    styles = ("default", "ggplot", "bmh", "seaborn-v0_8-whitegrid", "dark_background", "fivethirtyeight", "classic")
    style = styles[int(c.rng.integers(len(styles)))]
    dpi = 72 * c.scale
    with plt.style.context(style):
        fig = plt.figure(figsize=(c.w / dpi, c.h / dpi), dpi=dpi)
        try:
            ncharts = 1 if c.rng.random() < 0.7 else 2
            for k in range(ncharts):
                ax = fig.add_subplot(1, ncharts, k + 1)
                kind = int(c.rng.integers(0, 5))
                n = int(c.rng.integers(4, 12))
                if kind == 0:
                    for _ in range(int(c.rng.integers(1, 4))):
                        ax.plot(np.cumsum(c.rng.normal(0, 1, 40)), lw=float(c.rng.uniform(0.8, 3)),
                                marker="o" if c.rng.random() < 0.3 else None, ms=3)
                elif kind == 1:
                    ax.bar(range(n), c.rng.uniform(1, 10, n), color=[np.array(c.colour()) / 255 for _ in range(n)]
                           if c.rng.random() < 0.4 else None)
                elif kind == 2:
                    ax.pie(c.rng.uniform(1, 5, min(n, 6)), labels=[c.words(1) for _ in range(min(n, 6))],
                           autopct="%1.0f%%" if c.rng.random() < 0.5 else None)
                elif kind == 3:
                    ax.scatter(c.rng.normal(0, 1, 80), c.rng.normal(0, 1, 80), s=float(c.rng.uniform(4, 40)),
                               c=c.rng.random(80), cmap=str(c.rng.choice(["viridis", "plasma", "coolwarm", "tab10"])))
                else:
                    ax.imshow(c.rng.random((n, n)).cumsum(0), cmap=str(c.rng.choice(["viridis", "magma", "RdBu"])))
                ax.set_title(c.words(int(c.rng.integers(2, 5))).capitalize(), fontsize=float(c.rng.uniform(9, 14)))
                if kind != 2:
                    ax.set_xlabel(c.words(1))
                    ax.set_ylabel(c.words(1))
            with warnings.catch_warnings():  # a tiny canvas cannot fit every label; draw it anyway
                warnings.simplefilter("ignore", UserWarning)
                fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi)
        finally:
            plt.close(fig)
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB").resize((c.w, c.h)) if im.size != (c.w, c.h) else im.convert("RGB")


def _lineart(c: _Ctx) -> Image.Image:
    bg = (255, 255, 255) if c.rng.random() < 0.7 else c.colour(sat=(0.0, 0.2), val=(0.9, 1.0))
    img = Image.new("RGB", (c.w, c.h), bg)
    d = ImageDraw.Draw(img)
    for _ in range(int(c.rng.integers(8, 30))):
        kind = int(c.rng.integers(0, 6))
        col = c.grey(0, 50) if c.rng.random() < 0.5 else c.colour()
        width = c.s(c.rng.choice([1, 1, 2, 3, 5]))
        x0, y0 = int(c.rng.integers(0, c.w)), int(c.rng.integers(0, c.h))
        x1, y1 = int(c.rng.integers(0, c.w)), int(c.rng.integers(0, c.h))
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        fill = c.colour() if c.rng.random() < 0.35 else None
        if kind == 0:
            d.line([x0, y0, x1, y1], fill=col, width=width)
        elif kind == 1:
            d.rectangle(box, outline=col, width=width, fill=fill)
        elif kind == 2:
            d.ellipse(box, outline=col, width=width, fill=fill)
        elif kind == 3:
            pts = [(int(c.rng.integers(0, c.w)), int(c.rng.integers(0, c.h))) for _ in range(int(c.rng.integers(3, 7)))]
            d.polygon(pts, outline=col, fill=fill, width=width)
        elif kind == 4:  # hatching / fine stripes: periodic texture
            step = c.s(c.rng.integers(2, 7))
            for x in range(box[0], box[2], step):
                d.line([x, box[1], x, box[3]], fill=col, width=1)
        else:  # a labelled arrow (diagrams)
            d.line([x0, y0, x1, y1], fill=col, width=width)
            d.regular_polygon((x1, y1, c.s(5)), 3, fill=col)
            d.text((x0, y0), c.words(1), font=c.font(c.rng.integers(9, 16)), fill=col)
    return img


def _gradient(c: _Ctx, a: tuple, b: tuple) -> np.ndarray:
    yy, xx = np.mgrid[0 : c.h, 0 : c.w].astype(np.float32)
    if c.rng.random() < 0.5:
        ang = c.rng.uniform(0, np.pi)
        t = (xx * np.cos(ang) + yy * np.sin(ang))
    else:
        cx, cy = c.rng.uniform(0.2, 0.8) * c.w, c.rng.uniform(0.2, 0.8) * c.h
        t = np.hypot(xx - cx, yy - cy)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    return np.asarray(a, np.float32) * (1 - t[..., None]) + np.asarray(b, np.float32) * t[..., None]


def _studio(c: _Ctx) -> Image.Image:
    """A product / studio shot: a flat or smoothly graded saturated backdrop, shaded objects
    with soft shadows, a little sensor noise; sometimes a caption."""
    base = c.colour(sat=(0.6, 1.0), val=(0.6, 1.0)) if c.rng.random() < 0.75 else c.grey(225, 255)
    r = c.rng.random()
    if r < 0.4:
        bg = np.broadcast_to(np.asarray(base, np.float32), (c.h, c.w, 3)).copy()
    else:
        other = tuple(int(v * c.rng.uniform(0.55, 0.95)) for v in base) if r < 0.8 else c.colour(sat=(0.6, 1.0))
        bg = _gradient(c, base, other)
    img = Image.fromarray(bg.clip(0, 255).astype(np.uint8))
    for _ in range(int(c.rng.integers(1, 4))):
        ow, oh = int(c.w * c.rng.uniform(0.15, 0.45)), int(c.h * c.rng.uniform(0.15, 0.55))
        ox, oy = int(c.rng.integers(0, max(1, c.w - ow))), int(c.rng.integers(c.h // 5, max(c.h // 5 + 1, c.h - oh)))
        mask = Image.new("L", (c.w, c.h), 0)
        md = ImageDraw.Draw(mask)
        shape = int(c.rng.integers(0, 3))
        box = [ox, oy, ox + ow, oy + oh]
        if shape == 0:
            md.ellipse(box, fill=255)
        elif shape == 1:
            md.rounded_rectangle(box, radius=int(min(ow, oh) * c.rng.uniform(0.05, 0.4)), fill=255)
        else:
            md.polygon([(ox + ow // 2, oy), (ox + ow, oy + oh), (ox, oy + oh)], fill=255)
        # soft shadow, offset down-right
        shadow = mask.transform(mask.size, Image.Transform.AFFINE, (1, 0, -c.s(8), 0, 1, -c.s(10)))
        shadow = shadow.filter(ImageFilter.GaussianBlur(c.s(c.rng.uniform(4, 14))))
        dark = Image.new("RGB", img.size, tuple(int(v * 0.45) for v in img.getpixel((c.w // 2, c.h - 1))))
        img = Image.composite(dark, img, shadow.point(lambda v: int(v * 0.6)))
        # the object, lit from one side (a gradient across it) with a specular highlight
        colour = c.colour(sat=(0.5, 1.0), val=(0.5, 1.0)) if c.rng.random() < 0.7 else c.grey(20, 250)
        shade = Image.fromarray(_gradient(c, tuple(min(255, int(v * 1.25) + 20) for v in colour),
                                          tuple(int(v * 0.45) for v in colour)).clip(0, 255).astype(np.uint8))
        if c.rng.random() < 0.6:
            hl = Image.new("L", img.size, 0)
            hx, hy = ox + int(ow * c.rng.uniform(0.2, 0.5)), oy + int(oh * c.rng.uniform(0.15, 0.4))
            hr = max(2, int(min(ow, oh) * 0.12))
            ImageDraw.Draw(hl).ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=200)
            hl = hl.filter(ImageFilter.GaussianBlur(hr))
            shade = Image.composite(Image.new("RGB", img.size, (255, 255, 255)), shade, hl)
        img = Image.composite(shade, img, mask.filter(ImageFilter.GaussianBlur(0.6 * c.scale)))
    if c.rng.random() < 0.35:  # a caption or a logo-like word
        d = ImageDraw.Draw(img)
        f = c.font(c.rng.integers(14, 40))
        d.text((c.s(12), c.s(12)), c.words(int(c.rng.integers(1, 4))).upper(), font=f,
               fill=_contrast_text_colour(c, img.getpixel((c.s(14), c.s(14)))))
    arr = np.asarray(img, dtype=np.float32)
    sigma = float(c.rng.choice([0.0, 0.8, 1.5, 2.5]))
    if sigma:
        arr = arr + c.rng.normal(0, sigma, arr.shape).astype(np.float32)
    return Image.fromarray(arr.round().clip(0, 255).astype(np.uint8))


_DRAW: dict[str, Callable[[_Ctx], Image.Image]] = {
    "ui": _ui, "table": _table, "document": _document, "chart": _chart, "lineart": _lineart, "studio": _studio,
}


def generate(kind: str, seed: int, index: int, size: tuple[int, int] = (512, 512), scale: int = 1) -> Image.Image:
    """One RGB image of ``kind`` (see KINDS), ``size`` = (width, height), the same pixels for the
    same arguments."""
    if kind not in _DRAW:
        raise DataError(f"synthetic: unknown kind {kind!r}; the kinds are {list(KINDS)}")
    if scale not in (1, 2, 3):
        raise DataError(f"synthetic: scale={scale} must be 1, 2 or 3")
    w, h = size
    if min(w, h) < 32:
        raise DataError(f"synthetic: size {w}x{h} is too small; use at least 32x32")
    rng = np.random.default_rng([int(seed), KINDS.index(kind), int(index), scale])
    img = _DRAW[kind](_Ctx(rng, w, h, scale))
    if img.size != (w, h) or img.mode != "RGB":
        img = img.convert("RGB").resize((w, h))
    return img


def generate_set(out_dir: str | Path, *, count: int, seed: int, kinds: dict[str, float] | None = None,
                 scales: dict[int, float] | None = None, size: tuple[int, int] = (512, 512)) -> list[dict]:
    """Write ``count`` PNGs to ``out_dir`` (``<kind>-<scale>x-<index>.png``), the kinds and
    scales drawn by weight (default: every kind equally, scale 1 and 2 equally). One row per
    image: path, kind, class, scale, index, seed, sha256."""
    kinds = kinds or {k: 1.0 for k in KINDS}
    scales = scales or {1: 1.0, 2: 1.0}
    bad = set(kinds) - set(KINDS)
    if bad:
        raise DataError(f"synthetic: unknown kinds {sorted(bad)} in the mix; the kinds are {list(KINDS)}")
    if count < 0:
        raise DataError(f"synthetic: count={count} must be >= 0")
    names, kw = list(kinds), np.asarray([kinds[k] for k in kinds], dtype=np.float64)
    sv, sw = list(scales), np.asarray([scales[s] for s in scales], dtype=np.float64)
    if kw.sum() <= 0 or sw.sum() <= 0 or (kw < 0).any() or (sw < 0).any():
        raise DataError("synthetic: kind and scale weights must be >= 0 with a positive sum")
    plan = np.random.default_rng([int(seed), 0x5E7])
    picks = plan.choice(len(names), size=count, p=kw / kw.sum())
    spicks = plan.choice(len(sv), size=count, p=sw / sw.sum())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        kind, scale = names[int(picks[i])], int(sv[int(spicks[i])])
        img = generate(kind, seed, i, size=size, scale=scale)
        path = out / f"{kind}-{scale}x-{i:05d}.png"
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False, compress_level=6)
        data = buf.getvalue()
        path.write_bytes(data)
        rows.append({"path": str(path), "kind": kind, "class": KIND_CLASS[kind], "scale": scale, "index": i,
                     "seed": int(seed), "sha256": hashlib.sha256(data).hexdigest()})
    return rows


def generate_tests(out_dir: str | Path, *, per_class: int, seed: int, size: tuple[int, int] = (512, 512),
                   classes: tuple[str, ...] = CLASSES) -> list[dict]:
    """One test set per content class: ``<out_dir>/<class>/<kind>-<scale>x-<index>.png``, the
    class's kinds in equal shares, scales 1 and 2. Use a seed that training does not use."""
    bad = set(classes) - set(CLASSES)
    if bad:
        raise DataError(f"synthetic: unknown classes {sorted(bad)}; the classes are {list(CLASSES)}")
    rows = []
    for cls in classes:
        kinds = {kind: 1.0 for kind, c in KIND_CLASS.items() if c == cls}
        # each class its own seed stream, so adding a class does not change the others' images
        rows += generate_set(Path(out_dir) / cls, count=per_class, seed=int(seed) * 1000 + CLASSES.index(cls),
                             kinds=kinds, size=size)
    return rows


#: Columns of the synthesize stage's ``manifest.csv``: the validate table's columns the split
#: stage needs (so synthetic images are split by content hash like every other train file),
#: plus what the image is.
MANIFEST_COLUMNS = ("path", "source", "role", "sha256", "status", "near_dup_group", "clean_path", "kind", "class",
                    "scale")


def synthesize(out_dir: str | Path, *, count: int, seed: int, test_per_class: int, test_seed: int,
               size: tuple[int, int] = (512, 512), kinds: dict[str, float] | None = None) -> dict:
    """The ``synthesize`` stage: ``count`` training images in ``<out>/train`` (listed in
    ``<out>/manifest.csv``, role train, for the split) and ``test_per_class`` images per class in
    ``<out>/test/<class>`` (listed in ``<out>/tests.csv``), drawn with a different seed."""
    import csv

    if int(seed) == int(test_seed):
        raise DataError(f"synthetic: seed and test_seed are both {seed}; give the test set its own seed")
    out = Path(out_dir)
    rows = generate_set(out / "train", count=count, seed=seed, kinds=kinds, size=size)
    with open(out / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({"path": r["path"], "source": "synthetic", "role": "train", "sha256": r["sha256"],
                        "status": "ok", "near_dup_group": "", "clean_path": r["path"], "kind": r["kind"],
                        "class": r["class"], "scale": r["scale"]})
    tests = generate_tests(out / "test", per_class=test_per_class, seed=test_seed, size=size)
    with open(out / "tests.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "class", "kind", "scale", "sha256"])
        w.writeheader()
        w.writerows({k: r[k] for k in ("path", "class", "kind", "scale", "sha256")} for r in tests)
    clash = {r["sha256"] for r in rows} & {r["sha256"] for r in tests}
    if clash:  # same pixels in training and test: never expected from distinct seeds, but checked
        raise DataError(f"synthetic: {len(clash)} test image(s) equal training images; change test_seed")
    count_by = lambda rs, key: {k: sum(1 for r in rs if r[key] == k) for k in dict.fromkeys(r[key] for r in rs)}  # noqa: E731
    return {"train": len(rows), "train_kinds": count_by(rows, "kind"), "test": count_by(tests, "class")}
