"""FaceMesh's feature outlines: which of its points trace the face's contour, brows, eyes, nose and
lips. The face fit weights them, the face proxy draws the eyes, and the body layout keeps them."""

from __future__ import annotations

# Face features as FaceMesh index chains; closed chains repeat their first index at the end.
FACE_CHAINS: dict[str, tuple[tuple[int, ...], ...]] = {
    "contour": ((10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
                 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
                 54, 103, 67, 109, 10),),
    "brows": ((300, 293, 334, 296, 336), (276, 283, 282, 295, 285),
              (70, 63, 105, 66, 107), (46, 53, 52, 65, 55)),
    "eyes": ((263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249, 263),
             (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7, 33)),
    "nose": ((168, 6, 197, 195, 5, 4), (98, 97, 2, 326, 327)),
    "outer_lips": ((61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84,
                    181, 91, 146, 61),),
    "inner_lips": ((78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87,
                    178, 88, 95, 78),),
}
