"""Physical layers: differentiable, learnable models of imaging hardware.

Each layer maps scene intensity (N, C, H, W) in [0, 1] to a sensor readout in
[0, 1]. Every one exists as a function (one-off use) and an ``nn.Module``
(fixed hardware parameters are buffers, learnable ones ``nn.Parameter`` s),
with the physics in its docstring and the gradient trick it uses named:

==================  ===============================================================
quantization        :func:`quantize`, :class:`Quantize`, :func:`learned_discretization`,
                    :class:`LearnedDiscretization`, :func:`quantize_per_pixel` (straight-through, LSQ step gradient)
bit_allocation      :class:`BitAllocation` (Fisher bit sensitivity, implicit gradient of the budget)
optics              :func:`gaussian_psf`, :func:`defocus_psf`, :func:`airy_psf`,
                    :func:`blur`, :class:`Blur`, :class:`GaussianBlur`, :class:`LearnedPSF` (softmax reparameterisation)
shift_variant       :func:`shift_variant_blur`, :class:`ShiftVariantBlur`
sampling            :func:`bin_pixels`, :class:`Binning`, :class:`VariablePixelSensor`,
                    :class:`SparseMask` (top-k straight-through, relaxed Bernoulli)
mosaic              :func:`bayer_mosaic`, :class:`BayerMosaic`, :class:`LearnedCFA`,
                    :func:`exposure_mosaic`, :class:`ExposureMosaic`
illumination        :func:`led_frequencies`, :func:`led_weighting`, :class:`LEDWeighting` (softmax reparameterisation)
microscope          :func:`thin_object`, :func:`circular_pupil`, :func:`coherent_image`,
                    :class:`FourierMicroscope`, :func:`simulate_led_stack`
noise               :func:`shot_noise`, :func:`poisson_sample`, :func:`read_noise`,
                    :func:`saturate`, :class:`ShotNoise`, :class:`Sensor` (exact Poisson counts, reparameterisation)
registry            :data:`LAYERS`, :func:`make_layer`, :func:`describe_layer`,
                    :func:`output_shape` (for parameter sweeps; each row a ``layer_spec.LayerSpec``)
==================  ===============================================================

Gradients are the standard autograd idioms: straight-through as
``x + (q - x).detach()``, reparameterisation as ``e + (s - s.detach())``.
Only one hand-written ``torch.autograd.Function`` remains,
``bit_allocation._SensitivityQuantize``, because its backward is the lesson
(a Fisher model of what quantization noise costs the loss).

Bad input is refused with a ``ValueError``/``TypeError`` naming the parameter:
non-finite numbers, photon counts above ``MAX_PHOTONS``, PSFs above
``MAX_PSF_SIZE`` pixels, images above 8192 pixels a side. An empty batch in
gives an empty batch out.
"""

from . import (
    bit_allocation,
    illumination,
    microscope,
    mosaic,
    noise,
    optics,
    quantization,
    registry,
    sampling,
    shift_variant,
)
from .bit_allocation import *
from .illumination import *
from .microscope import *
from .mosaic import *
from .noise import *
from .optics import *
from .quantization import *
from .registry import *
from .sampling import *
from .shift_variant import *

__all__ = [
    *quantization.__all__,
    *bit_allocation.__all__,
    *optics.__all__,
    *shift_variant.__all__,
    *sampling.__all__,
    *mosaic.__all__,
    *illumination.__all__,
    *microscope.__all__,
    *noise.__all__,
    *registry.__all__,
]
