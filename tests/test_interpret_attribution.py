"""Occlusion, saliency, Grad-CAM and sliding windows, checked against Captum and hand-made oracles."""

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion, Saliency
from sklearn.metrics import jaccard_score
from torch import nn

from deepimaging.interpret import (
    grad_cam,
    heatmap_detections,
    match_detections,
    occlusion_map,
    saliency_map,
    sliding_window,
    window_boxes,
)
from deepimaging.metrics import box_jaccard
from deepimaging.models import BasicCNN


@pytest.fixture
def model():
    """A small CNN with confident outputs (scaled classifier), so probability drops are not tiny."""
    torch.manual_seed(0)
    cnn = BasicCNN(3, 4, widths=(8, 16))
    with torch.no_grad():
        cnn.classifier.weight.mul_(20)
        for module in cnn.modules():  # non-trivial running statistics for eval-mode batch norm
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return cnn.eval()


@pytest.fixture
def image():
    return torch.rand(3, 30, 34, generator=torch.Generator().manual_seed(1))


def softmax_model(model):
    return lambda x: torch.softmax(model(x), dim=1)


def captum_occlusion(model, image, target, window, stride, baseline=0.5):
    attribution = Occlusion(softmax_model(model)).attribute(
        image[None],
        sliding_window_shapes=(3, *window),
        strides=(3, *stride),
        baselines=baseline,
        target=target,
        perturbations_per_eval=16,
    )[0]
    # Captum repeats the map over the channels when the window spans them all.
    assert torch.allclose(attribution, attribution[:1].expand_as(attribution))
    return attribution[0]


# ----------------------------------------------------------------------------- occlusion


def test_occlusion_equals_captum_for_non_overlapping_patches(model):
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(2))
    ours = occlusion_map(model, image, target=2, sliding_window_shapes=8, strides=8)
    expected = captum_occlusion(model, image, 2, (8, 8), (8, 8))
    assert ours.abs().max() > 1e-3  # the oracle comparison is not between two zero maps
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_occlusion_averages_overlapping_patches_and_crops_at_the_edge_like_captum(model, image):
    # 30 x 34 with a 7 x 5 patch and strides (3, 4): the strides do not tile the image.
    ours = occlusion_map(model, image, target=1, sliding_window_shapes=(7, 5), strides=(3, 4), batch_size=7)
    expected = captum_occlusion(model, image, 1, (7, 5), (3, 4))
    assert ours.abs().max() > 1e-3
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_occlusion_with_per_channel_baseline_equals_captum(model, image):
    baseline = image.mean(dim=(1, 2), keepdim=True)  # (3, 1, 1)
    ours = occlusion_map(model, image, 0, sliding_window_shapes=6, strides=3, baselines=baseline)
    expected = captum_occlusion(model, image, 0, (6, 6), (3, 3), baseline=baseline.expand_as(image)[None])
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_occlusion_does_not_depend_on_batch_size(model, image):
    one = occlusion_map(model, image, sliding_window_shapes=6, strides=4, batch_size=1)
    many = occlusion_map(model, image, sliding_window_shapes=6, strides=4, batch_size=1000)
    torch.testing.assert_close(one, many, atol=1e-6, rtol=0)


def test_occlusion_default_target_is_the_predicted_class(model, image):
    predicted = int(model(image[None]).argmax())
    torch.testing.assert_close(
        occlusion_map(model, image, sliding_window_shapes=6),
        occlusion_map(model, image, predicted, sliding_window_shapes=6),
    )


def test_occlusion_by_hand_on_a_model_that_reads_one_pixel():
    # The model's class-0 probability is sigmoid(10 * x[0, 0, 0]); greying (0, 0) out changes it.
    class OnePixel(nn.Module):
        def forward(self, x):
            z = 10 * x[:, 0, 0, 0]
            return torch.stack([z, torch.zeros_like(z)], dim=1)

    image = torch.zeros(1, 4, 4)
    image[0, 0, 0] = 1.0
    result = occlusion_map(OnePixel(), image, 0, sliding_window_shapes=2, strides=2)
    drop = torch.sigmoid(torch.tensor(10.0)) - torch.sigmoid(torch.tensor(5.0))
    expected = torch.zeros(4, 4)
    expected[:2, :2] = drop
    torch.testing.assert_close(result, expected)


# ----------------------------------------------------------------------------- gradients


def test_saliency_equals_captum_saliency_max_over_channels(model, image):
    ours = saliency_map(model, image, target=3)
    expected = Saliency(model).attribute(image[None].requires_grad_(), target=3, abs=True)[0].amax(dim=0)
    assert expected.max() > 0
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def test_smoothgrad_equals_captum_noise_tunnel_with_the_same_noise(model, image):
    # Captum draws its noise from the global generator; draw the same numbers into ours by
    # replaying the seed: both take n * C * H * W standard normals in one call.
    sigma = 0.1 * float(image.max() - image.min())
    torch.manual_seed(5)
    expected = NoiseTunnel(Saliency(model)).attribute(
        image[None], nt_type="smoothgrad", nt_samples=6, stdevs=sigma, target=1, abs=True
    )[0]
    ours = saliency_map(model, image, 1, smoothgrad_samples=6, noise_level=0.1, seed=5, batch_size=6)
    plain = saliency_map(model, image, 1)
    assert not torch.allclose(ours, plain)
    torch.testing.assert_close(ours, expected.amax(dim=0), atol=1e-5, rtol=1e-4)


def test_smoothgrad_is_reproducible_and_batch_size_independent(model, image):
    a = saliency_map(model, image, smoothgrad_samples=5, seed=3, batch_size=2)
    b = saliency_map(model, image, smoothgrad_samples=5, seed=3, batch_size=5)
    c = saliency_map(model, image, smoothgrad_samples=5, seed=4)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(a, c)


def test_saliency_leaves_parameter_gradients_untouched(model, image):
    saliency_map(model, image)
    grad_cam(model, image, "features.6")
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("layer", ["features.0", "features.6"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grad_cam_equals_captum_layer_grad_cam_upsampled(model, image, layer, mode):
    module = dict(model.named_modules())[layer]
    coarse = LayerGradCam(model, module).attribute(image[None], target=2, relu_attributions=True)
    expected = LayerAttribution.interpolate(coarse, (30, 34), interpolate_mode=mode)[0, 0]
    ours = grad_cam(model, image, layer, target=2, interpolate_mode=mode)
    assert ours.shape == (30, 34)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def test_grad_cam_of_a_layer_before_an_in_place_relu_is_the_pre_relu_one(model, image):
    # features.5 is batch norm, followed by ReLU(inplace=True); hooks must see it un-rectified.
    activation = {}
    handle = model.features[5].register_forward_hook(lambda m, i, o: activation.update(a=o.clone()))
    scores = model(image[None])
    handle.remove()
    a = activation["a"].detach().requires_grad_(True)
    rest = nn.Sequential(*list(model.features)[6:], model.classifier)
    (gradient,) = torch.autograd.grad(rest(a.clone())[0, 0], a)  # clone: rest starts with ReLU(inplace)
    cam = torch.relu((gradient.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True)).detach()
    expected = nn.functional.interpolate(cam, size=(30, 34), mode="bilinear")[0, 0]
    assert scores.shape == (1, 4)
    torch.testing.assert_close(grad_cam(model, image, "features.5", 0), expected, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------- eval mode


def test_model_in_training_mode_is_evaluated_in_eval_mode_and_restored(model, image):
    expected = {
        "occlusion": occlusion_map(model, image, 0, sliding_window_shapes=10),
        "saliency": saliency_map(model, image, 0),
        "grad_cam": grad_cam(model, image, "features.2", 0),
        "sliding": sliding_window(model, image, 16, 8),
    }
    model.train()
    model.features[1].eval()  # a mixed state must come back exactly
    stats = model.features[1].running_mean.clone()
    got = {
        "occlusion": occlusion_map(model, image, 0, sliding_window_shapes=10),
        "saliency": saliency_map(model, image, 0),
        "grad_cam": grad_cam(model, image, "features.2", 0),
        "sliding": sliding_window(model, image, 16, 8),
    }
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], msg=key)
    assert model.training and not model.features[1].training and model.features[5].training
    assert torch.equal(model.features[1].running_mean, stats)


# ----------------------------------------------------------------------------- sliding window


def naive_sliding_window(model, image, window, stride):
    rows = (image.shape[1] - window) // stride + 1
    cols = (image.shape[2] - window) // stride + 1
    out = torch.zeros(4, rows, cols)
    with torch.no_grad():
        for i in range(rows):
            for j in range(cols):
                patch = image[None, :, i * stride : i * stride + window, j * stride : j * stride + window]
                out[:, i, j] = torch.softmax(model(patch), dim=1)[0]
    return out


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_sliding_window_equals_a_naive_loop_over_windows(model, batch_size):
    image = torch.rand(3, 45, 61, generator=torch.Generator().manual_seed(3))
    ours = sliding_window(model, image, 16, 6, batch_size=batch_size)
    expected = naive_sliding_window(model, image, 16, 6)
    assert ours.shape == expected.shape == (4, 5, 8)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def _confident_cnn(kernel_size):
    """Like the ``model`` fixture (two blocks, downsampling 4), with a chosen kernel size."""
    torch.manual_seed(0)
    cnn = BasicCNN(3, 4, widths=(8, 16), kernel_size=kernel_size)
    with torch.no_grad():
        cnn.classifier.weight.mul_(20)
        for module in cnn.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return cnn.eval()


@pytest.mark.parametrize(("window", "stride"), [(16, 4), (12, 8), (20, 20)])
def test_dense_sliding_window_equals_the_naive_loop_when_kernels_are_1x1(window, stride):
    # 1x1 convolutions pad nothing, so a window's trunk output is exactly the crop of the
    # whole image's trunk output: dense evaluation must reproduce the per-window loop.
    model = _confident_cnn(kernel_size=1)
    image = torch.rand(3, 45, 61, generator=torch.Generator().manual_seed(3))
    dense = sliding_window(model, image, window, stride, method="dense")
    expected = naive_sliding_window(model, image, window, stride)
    assert dense.shape == expected.shape
    torch.testing.assert_close(dense, expected, atol=1e-5, rtol=0)


def test_dense_sliding_window_with_3x3_kernels_differs_from_exact_only_in_the_border_cells(model):
    # With zero padding, a window classified alone sees zeros beyond its edges; in the dense
    # trunk those convolutions see the real neighbouring pixels. Each conv-pool block spreads
    # that by one row, which its pooling halves: only the outermost ring of final cells differs.
    image = torch.rand(3, 45, 61, generator=torch.Generator().manual_seed(3))
    trunk, down, window, stride = model.features[:-2], 4, 16, 8
    with torch.no_grad():
        whole = trunk(image[None])[0]  # (F, 11, 15)
        rows, cols = (45 - window) // stride + 1, (61 - window) // stride + 1
        oracle = torch.zeros(4, rows, cols)
        ring = []
        for i in range(rows):
            for j in range(cols):
                y, x = i * stride, j * stride
                alone = trunk(image[None, :, y : y + window, x : x + window])[0]  # (F, 4, 4)
                crop = whole[:, y // down : (y + window) // down, x // down : (x + window) // down]
                torch.testing.assert_close(crop[:, 1:-1, 1:-1], alone[:, 1:-1, 1:-1], atol=1e-5, rtol=0)
                ring.append(float((crop - alone).abs().max()))
                # The dense method's definition, one window at a time: mean of the crop, classifier.
                oracle[:, i, j] = torch.softmax(model.classifier(crop.mean(dim=(1, 2))[None]), dim=1)[0]
    assert min(ring) > 1e-3  # the border cells really do differ (the caveat is not vacuous)
    dense = sliding_window(model, image, window, stride, method="dense")
    torch.testing.assert_close(dense, oracle, atol=1e-5, rtol=0)
    exact = sliding_window(model, image, window, stride)
    assert float((dense - exact).abs().max()) > 1e-4


def test_dense_sliding_window_uses_eval_mode_and_restores_training_mode():
    model = _confident_cnn(kernel_size=1)
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(4))
    expected = naive_sliding_window(model, image, 16, 8)
    model.train()
    got = sliding_window(model, image, 16, 8, method="dense")
    assert model.training and model.features[1].training
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_dense_sliding_window_needs_multiples_of_the_downsampling(model, image):
    with pytest.raises(ValueError, match="window to be a multiple of the trunk's downsampling 4x4.*18x18"):
        sliding_window(model, image, 18, 4, method="dense")
    with pytest.raises(ValueError, match="stride to be a multiple of the trunk's downsampling 4x4.*6x6"):
        sliding_window(model, image, 16, 6, method="dense")
    with pytest.raises(ValueError, match="stride to be a multiple.*4x2"):
        sliding_window(model, image, (16, 8), (4, 2), method="dense")
    with pytest.raises(ValueError, match="method must be one of"):
        sliding_window(model, image, 16, 4, method="fast")


def test_dense_sliding_window_rejects_models_without_a_pooled_trunk(image):
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match='method="dense" needs a model like BasicCNN.*Sequential'):
        sliding_window(plain, image, 16, 4, method="dense")
    flattened = BasicCNN(3, 4, widths=(8, 16))
    flattened.features[-2] = nn.AdaptiveAvgPool2d(2)  # not a global average any more
    with pytest.raises(ValueError, match="needs a model like BasicCNN.*BasicCNN is not one"):
        sliding_window(flattened, image, 16, 4, method="dense")


def test_window_boxes_are_the_pixels_each_window_covers():
    boxes = window_boxes((45, 61), 16, (6, 5))
    assert boxes.shape == (5, 10, 4)
    torch.testing.assert_close(boxes[2, 3], torch.tensor([15.0, 12.0, 31.0, 28.0]))
    assert boxes[..., 2].max() <= 61 and boxes[..., 3].max() <= 45


# ----------------------------------------------------------------------------- detections


def test_box_jaccard_used_by_detections_equals_jaccard_of_rasterised_boxes():
    generator = torch.Generator().manual_seed(0)
    corners = torch.randint(0, 20, (12, 2, 2), generator=generator).sort(dim=1).values
    boxes = torch.cat([corners[:, 0], corners[:, 1] + 1], dim=1).float()  # (x0, y0, x1, y1), non-empty
    iou = box_jaccard(boxes[:6], boxes[6:])
    for a in range(6):
        for b in range(6):
            masks = np.zeros((2, 21, 21), dtype=bool)
            for k, (x0, y0, x1, y1) in enumerate([boxes[a], boxes[6 + b]]):
                masks[k, int(y0) : int(y1), int(x0) : int(x1)] = True
            expected = jaccard_score(masks[0].ravel(), masks[1].ravel(), zero_division=0.0)
            assert iou[a, b].item() == pytest.approx(expected, abs=1e-6)


def test_heatmap_detections_keep_local_maxima_and_suppress_overlaps():
    # Two peaks on a 5 x 6 grid of windows 10 px wide with stride 5; class 0 is background.
    heatmaps = torch.zeros(3, 5, 6)
    heatmaps[0] = 1.0
    heatmaps[:, 1, 1] = torch.tensor([0.1, 0.9, 0.0])  # strongest, class 1
    heatmaps[:, 1, 2] = torch.tensor([0.3, 0.0, 0.7])  # overlaps the first (IoU 1/3): suppressed
    heatmaps[:, 3, 4] = torch.tensor([0.2, 0.1, 0.7])  # far away: kept, class 2
    heatmaps[:, 4, 0] = torch.tensor([0.6, 0.2, 0.2])  # below threshold
    boxes, scores, labels = heatmap_detections(heatmaps, 10, 5, background=0, threshold=0.5, overlap=0.3)
    # The first box is the score-weighted mean of windows (1, 1) and (1, 2): x shifts by 5 * 0.7 / 1.6.
    shift = 5 * 0.7 / 1.6
    expected = torch.tensor([[5.0 + shift, 5.0, 15.0 + shift, 15.0], [20.0, 15.0, 30.0, 25.0]])
    torch.testing.assert_close(boxes, expected)
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8]))
    assert labels.tolist() == [1, 2]
    # With a stricter overlap nothing is suppressed; a smaller box is centred on each window.
    boxes, _, _ = heatmap_detections(heatmaps, 10, 5, background=0, box_size=4, overlap=0.5)
    assert len(boxes) == 3
    torch.testing.assert_close(boxes[0], torch.tensor([8.0, 8.0, 12.0, 12.0]))


def test_match_detections_counts_true_and_false_positives_by_hand():
    true_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    detections = torch.tensor([[0.0, 0.0, 10.0, 8.0], [1.0, 0.0, 11.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    result = match_detections(detections, true_boxes, iou_threshold=0.5)
    # The first takes box 0 (IoU 0.8); the second overlaps only the taken box: a false positive.
    assert result["matches"] == [(0, 0)]
    assert (result["true_positives"], result["false_positives"], result["false_negatives"]) == (1, 2, 1)
    assert result["precision"] == pytest.approx(1 / 3) and result["recall"] == pytest.approx(0.5)
    assert result["mean_iou"] == pytest.approx(0.8)
    torch.testing.assert_close(result["best_iou"], torch.tensor([90 / 110, 0.0]))  # second detection


# ----------------------------------------------------------------------------- bad input


def test_patch_larger_than_the_image_is_an_error(model, image):
    with pytest.raises(ValueError, match="must fit in the image.*40x8 patch for a 30x34"):
        occlusion_map(model, image, sliding_window_shapes=(40, 8))
    with pytest.raises(ValueError, match="window must fit"):
        sliding_window(model, image, 32)


def test_stride_of_zero_or_larger_than_the_patch_is_an_error(model, image):
    with pytest.raises(ValueError, match="strides must be in \\[1, inf\\]; got 0"):
        occlusion_map(model, image, sliding_window_shapes=8, strides=0)
    with pytest.raises(ValueError, match="at most the patch size"):
        occlusion_map(model, image, sliding_window_shapes=8, strides=9)
    with pytest.raises(ValueError, match="stride must be in"):
        sliding_window(model, image, 16, 0)


def test_target_out_of_range_is_an_error(model, image):
    for run in (
        lambda: occlusion_map(model, image, 4),
        lambda: saliency_map(model, image, -1),
        lambda: grad_cam(model, image, "features.0", 4),
    ):
        with pytest.raises(ValueError, match="target must be in \\[0, 3\\]"):
            run()


def test_wrong_image_shape_or_channel_count_is_an_error(model, image):
    with pytest.raises(ValueError, match="single image"):
        occlusion_map(model, image[None].repeat(2, 1, 1, 1))
    with pytest.raises(ValueError, match="shape \\(C, H, W\\) or \\(N, C, H, W\\)"):
        saliency_map(model, image[0])
    with pytest.raises(ValueError, match="3 channel\\(s\\).*got 1"):
        sliding_window(model, image[:1], 16)
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        grad_cam(model, image * 3, "features.0")


def test_unknown_layer_name_is_an_error_that_lists_the_layers(model, image):
    with pytest.raises(ValueError, match="unknown layer 'features.99'.*features.0 \\(Conv2d\\)"):
        grad_cam(model, image, "features.99")


# ----------------------------------------------------------------------------- figures and explorer


def test_attribution_overlay_centres_signed_maps_on_zero_and_checks_the_size(image):
    from deepimaging.plots import attribution_figure, attribution_overlay

    signed = torch.linspace(-1, 3, 30 * 34).reshape(30, 34)
    ax = attribution_overlay(image, signed, title="occlusion")
    assert ax.images[1].get_clim() == (-3.0, 3.0) and ax.get_title() == "occlusion"
    ax = attribution_overlay(image, signed.abs())
    assert ax.images[1].get_clim() == (0.0, 3.0)
    with pytest.raises(ValueError, match="image's size"):
        attribution_overlay(image, signed[:10])
    fig = attribution_figure(image, {"a": signed, "b": signed.abs()}, title="two maps")
    assert len(fig.axes) == 5  # image, two maps, two colorbars


def test_overlays_take_lists_and_bfloat16_maps_and_refuse_text_naming_the_parameter(image):
    from deepimaging.plots import attribution_overlay, heatmap_overlay

    # bfloat16 (mixed-precision models) has no NumPy dtype: the map is widened, its values kept.
    signed = torch.linspace(-1, 3, 30 * 34).reshape(30, 34).to(torch.bfloat16)
    ax = attribution_overlay(image, signed)
    np.testing.assert_array_equal(ax.images[1].get_array(), signed.float().numpy())
    ax = heatmap_overlay(image, [[0.0, 0.5], [1.0, 0.25]], window=16, stride=6)
    np.testing.assert_array_equal(ax.images[1].get_array(), [[0.0, 0.5], [1.0, 0.25]])
    with pytest.raises(TypeError, match="attribution must hold real numbers"):
        attribution_overlay(image, np.full((30, 34), "x"))
    with pytest.raises(TypeError, match="heatmap must hold real numbers"):
        heatmap_overlay(image, [["a", "b"]], window=16, stride=6)


def test_heatmap_overlay_puts_each_cell_over_its_window_centre(image):
    from deepimaging.plots import heatmap_overlay

    ax = heatmap_overlay(image, torch.rand(3, 4), window=16, stride=6)
    left, right, bottom, top = ax.images[1].get_extent()
    # Cell (0, 0) is centred at the first window's centre (8, 8); cells are one stride wide.
    assert (left, top) == (5.0, 5.0) and (right, bottom) == (8 + 3.5 * 6, 8 + 2.5 * 6)


def test_detection_boxes_draws_one_rectangle_per_box(image):
    from deepimaging.plots import detection_boxes

    ax = detection_boxes(
        image, torch.tensor([[1.0, 2, 10, 12]]), torch.tensor([[0.0, 0, 5, 5], [3, 3, 9, 9]])
    )
    assert len(ax.patches) == 3


def test_occlusion_explorer_shows_the_map_of_the_chosen_image_patch_and_stride(model):
    from deepimaging.data import ImageDataset
    from deepimaging.widgets import OcclusionExplorer

    images = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(4))
    data = ImageDataset(images, torch.tensor([0, 1, 2]), ["a", "b", "c", "d"])
    explorer = OcclusionExplorer(model, data, patch_sizes=(4, 8))
    assert "deepimaging-occlusion" in explorer.widget._dom_classes
    assert explorer.image_slider.description == "image" and explorer.patch_slider.description == "patch size"
    predicted = int(model(images[:1]).argmax())
    torch.testing.assert_close(
        explorer.occlusion(*explorer.setting),
        occlusion_map(model, images[0], predicted, sliding_window_shapes=8, strides=4),
    )
    before = (explorer.picture.value, explorer.readout.value)
    explorer.image_slider.value = 2
    assert explorer.picture.value != before[0] and explorer.readout.value != before[1]
    assert (2, 8, 4) in explorer.maps
    explorer.patch_slider.value = 4  # the stride (4) still fits; its maximum follows the patch
    assert explorer.stride_slider.max == 4 and explorer.setting == (2, 4, 4)
    assert "4x4 patch" in explorer.readout.value
    explorer.stride_slider.value = 2
    assert explorer.setting == (2, 4, 2) and (2, 4, 2) in explorer.maps
    assert "image/png" in explorer._repr_mimebundle_()


def test_occlusion_explorer_rejects_patches_larger_than_the_images(model):
    from deepimaging.widgets import OcclusionExplorer

    with pytest.raises(ValueError, match="patch_sizes must be in \\[1, 24\\]"):
        OcclusionExplorer(model, torch.rand(2, 3, 24, 24), patch_sizes=(8, 32))
