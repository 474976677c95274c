"""Image files (PNG, JPEG, TIFF with any number of pages) read by OCR, one block per page.

The declared size is checked before any pixel is decoded (`workbench.load.ocr.check_pixels`), a
file Pillow cannot open is reported as corrupt, and each page goes through `workbench.load.ocr`.
Leaves out: images inside other documents (PDF pages are OCR'd by `workbench.load.pdf`).
"""

from __future__ import annotations

import io
import time

from workbench.errors import ParseError
from workbench.load.ocr import check_pixels, ocr_pages, read_image
from workbench.records import Block, ParsedDocument



def load_image(data: bytes, stem: str, limits) -> ParsedDocument:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if not limits.ocr_languages:
        raise ParseError("an image file: reading it needs OCR, which is off ([ocr] enabled)")
    Image.MAX_IMAGE_PIXELS = None  # opening reads only the header; our check below runs before any decoding
    try:
        img = Image.open(io.BytesIO(data), formats=("PNG", "JPEG", "TIFF"))  # no EPS, PSD, ... decoders
        fmt = img.format or "image"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ParseError(f"corrupt or unreadable image ({exc})") from None
    check_pixels(*img.size, limits.ocr_max_pixels)
    blocks, pages = [], {}
    started = time.perf_counter()
    try:
        for i, frame in enumerate(ImageSequence.Iterator(img)):
            if i >= limits.ocr_max_pages:
                raise ParseError(f"image has more than {limits.ocr_max_pages} pages ([ocr] max_pages)")
            check_pixels(*frame.size, limits.ocr_max_pixels, what=f"page {i + 1} of the image")
            frame.load()
            page = read_image(frame, limits.ocr_languages, limits.ocr_page_timeout_s)
            pages[i + 1] = page
            if page.text:
                blocks.append(Block(text=page.text, page=i + 1))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ParseError(f"corrupt or unreadable image ({exc})") from None
    if not blocks:
        raise ParseError(f"no text found by OCR in this {fmt} image ({len(pages)} page(s))")
    return ParsedDocument(format="image", title=stem, blocks=tuple(blocks), metadata={"image_format": fmt},
                          ocr_pages=ocr_pages(pages), ocr_seconds=round(time.perf_counter() - started, 2))
