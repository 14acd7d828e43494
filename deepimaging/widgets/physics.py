"""Explorer for the physical layers: a simulated camera with sliders for bits, blur, binning and photons."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from .. import physics
from .._checks import check_images, check_int, check_number
from ..plots import imshow
from ._base import Explorer, figure_to_png

__all__ = ["PhysicsExplorer"]

BINNING_FACTORS = (1, 2, 4, 8)
BITS_RANGE = (1, 12)
PHOTONS_RANGE = (1.0, 1e5)


class PhysicsExplorer(Explorer):
    """Move the sliders and watch a blood-cell image pass through a simulated camera.

    The camera is, in physical order: a Gaussian lens blur (``sigma`` pixels;
    0 = sharp), pixel binning (``factor``), then a :class:`~deepimaging.physics.Sensor`
    with ``photons`` photo-electrons at full intensity (shot noise, 2 e- read
    noise, saturation) and a ``bits``-bit ADC. The noise is seeded, so moving a
    slider changes only what that slider controls. Each stage is cached by its
    settings: moving the bits slider only re-quantizes, moving photons only
    redraws the noise and re-quantizes.

    Parameters
    ----------
    images : torch.Tensor
        Scenes (N, C, H, W) in [0, 1] (1 or 3 channels); the first is shown.
    bits, sigma, factor, photons : starting values of the sliders.
        bits in 1..12, sigma in [0, min(3, (size - 1) / 6)] pixels, factor one of
        1, 2, 4, 8 dividing the image size, photons in [1, 1e5]; a value outside
        its slider's range is refused (a slider would silently clamp it).
    seed : int
        Seeds the sensor noise.

    Attributes
    ----------
    bits : ipywidgets.IntSlider
    blur : ipywidgets.FloatSlider
        Gaussian PSF width in pixels.
    binning : ipywidgets.SelectionSlider
    photons : ipywidgets.FloatLogSlider
    image : ipywidgets.Image
        Scene and sensor image (PNG).
    readout : ipywidgets.HTML
        Settings and the sensor image's PSNR against the scene.
    """

    name = "physics"

    def __init__(self, images, *, bits: int = 8, sigma: float = 0.0, factor: int = 1, photons: float = 1000.0,
                 seed: int = 0):  # fmt: skip
        check_images(images)
        if len(images) == 0:
            raise ValueError(f"images must hold at least one image to show; got shape {tuple(images.shape)}")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels to be shown; got {images.shape[1]}")
        self.scene = images[:1].detach().cpu().float()
        self.seed = check_int(seed, "seed", 0)
        size = min(self.scene.shape[-2:])
        factors = [
            f for f in BINNING_FACTORS if self.scene.shape[-2] % f == 0 and self.scene.shape[-1] % f == 0
        ]
        if factor not in factors:
            raise ValueError(
                f"factor must be one of {factors} for images of size {tuple(self.scene.shape[-2:])}; got {factor}"
            )
        max_sigma = min(3.0, (size - 1) / 6)
        # A slider silently clamps a value outside its range: check the starting values here instead.
        check_int(bits, "bits", BITS_RANGE[0], BITS_RANGE[1])
        check_number(sigma, "sigma", 0.0, max_sigma)
        check_number(photons, "photons", PHOTONS_RANGE[0], PHOTONS_RANGE[1])
        self.bits = widgets.IntSlider(
            value=bits, min=BITS_RANGE[0], max=BITS_RANGE[1], description="bits", continuous_update=False
        )
        self.blur = widgets.FloatSlider(
            value=sigma, min=0.0, max=max_sigma, step=0.25, description="blur σ (px)", continuous_update=False
        )
        self.binning = widgets.SelectionSlider(
            options=factors, value=factor, description="binning", continuous_update=False
        )
        self.photons = widgets.FloatLogSlider(  # 10**0 to 10**5 photons: PHOTONS_RANGE
            value=photons, base=10, min=0, max=5, step=0.25, description="photons", continuous_update=False
        )
        self.image = widgets.Image(format="png")
        self.readout = widgets.HTML()
        self._cache: dict = {}
        for control in (self.bits, self.blur, self.binning, self.photons):
            control.observe(self._update, names="value")
        controls = widgets.VBox([self.blur, self.binning, self.photons, self.bits])
        self._finish(widgets.VBox([widgets.HBox([controls, self.readout]), self.image]))
        self._update()

    # Each stage is cached under the settings it depends on, so a slider recomputes only its own stage.
    def _stage(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def simulate(self) -> torch.Tensor:
        """The sensor image (1, C, H, W) for the current slider values."""
        sigma, factor = float(self.blur.value), int(self.binning.value)
        photons, bits = float(self.photons.value), int(self.bits.value)
        with torch.no_grad():
            blurred = self._stage(
                ("blur", sigma), lambda: physics.GaussianBlur(sigma)(self.scene) if sigma > 0 else self.scene
            )
            binned = self._stage(("bin", sigma, factor), lambda: physics.bin_pixels(blurred, factor))
            analog = self._stage(
                ("sensor", sigma, factor, photons),
                lambda: physics.Sensor(photons, read_noise=2.0, seed=self.seed).analog(binned),
            )
            return self._stage(("adc", sigma, factor, photons, bits), lambda: physics.quantize(analog, bits))

    def _title(self) -> str:
        return (
            f"σ = {self.blur.value:g} px, binning {self.binning.value}, "
            f"{self.photons.value:.3g} photons, {self.bits.value} bits"
        )

    def _figure(self, sensor):
        fig, (left, right) = plt.subplots(1, 2, figsize=(6, 3.3))
        imshow(left, self.scene[0], "scene")
        imshow(right, sensor[0], "sensor image")
        fig.suptitle(self._title(), fontsize=10)
        fig.tight_layout()
        return fig

    def _update(self, change=None):
        sensor = self.simulate()
        self.image.value = figure_to_png(self._figure(sensor))
        mse = float(((sensor - self.scene) ** 2).mean())
        psnr = float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()
        self.readout.value = (
            f"<b>{self._title()}</b><br>PSNR against the scene: {psnr:.1f} dB<br>"
            f"levels: {2**self.bits.value}; mean photo-electrons per pixel: "
            f"{float(self.scene.mean()) * self.photons.value:.3g}"
        )

    def static_figure(self):
        """Scene and sensor image at the current slider values (the PNG fallback)."""
        return self._figure(self.simulate())
