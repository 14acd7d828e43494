"""Physical layers: differentiable, learnable models of imaging hardware.

Each layer maps scene intensity (N, C, H, W) in [0, 1] to a sensor readout in
[0, 1]. Every one exists as a function (one-off use) and an ``nn.Module``
(fixed hardware parameters are buffers, learnable ones ``nn.Parameter`` s),
with the physics in its docstring and the gradient trick it uses named:

==================  ===============================================================
quantization        :func:`quantize`, :class:`Quantize`, :class:`LearnedDiscretization`,
                    :class:`BitAllocation` (bit depth; straight-through, LSQ step gradient, Fisher bit sensitivity)
optics              :func:`gaussian_psf`, :func:`defocus_psf`, :func:`airy_psf`,
                    :func:`blur`, :class:`Blur`, :class:`GaussianBlur`,
                    :class:`LearnedPSF`, :class:`ShiftVariantBlur`, :func:`local_convolution`
sampling            :func:`bin_pixels`, :class:`Binning`, :class:`VariablePixelSensor`,
                    :class:`SparseMask` (top-k straight-through, relaxed Bernoulli)
mosaic              :func:`bayer_mosaic`, :class:`BayerMosaic`, :class:`LearnedCFA`,
                    :func:`exposure_mosaic`, :class:`ExposureMosaic`
illumination        :class:`LEDWeighting`, :class:`FourierMicroscope`,
                    :func:`simulate_led_stack`
noise               :func:`shot_noise`, :func:`poisson_sample`, :func:`read_noise`,
                    :func:`saturate`, :class:`ShotNoise`, :class:`Sensor`
registry            :data:`LAYERS`, :func:`make_layer`, :func:`describe_layer`,
                    :func:`output_shape` (for parameter sweeps)
==================  ===============================================================
"""

from .bit_allocation import *
from .illumination import *
from .mosaic import *
from .noise import *
from .optics import *
from .quantization import *
from .registry import *
from .sampling import *
from .shift_variant import *
