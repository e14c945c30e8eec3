"""Shapes, validation and growth of the plain networks."""

from __future__ import annotations

import pytest
import torch
from opacus.validators import ModuleValidator

from ganleaks.models.modules.pggan import fade_real, growth_schedule
from ganleaks.models.nets import (
    NETWORK_CLASSES,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    PGGANDiscriminator,
    PGGANGenerator,
    VAEGANEncoder,
)
from ganleaks.models.nets.pggan import SCORING_GROUP_SIZE, minibatch_stddev, scoring_reference_images


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_nets_map_latents_to_images_and_images_to_scores(resolution: int, channels: int) -> None:
    torch.manual_seed(0)
    shape = (channels, resolution, resolution)
    generator = DCGANGenerator(latent_dim=8, data_shape=shape, base_channels=4)
    discriminator = DCGANDiscriminator(data_shape=shape, base_channels=4)
    encoder = VAEGANEncoder(latent_dim=8, data_shape=shape, base_channels=4)
    images = generator(torch.randn(5, 8))
    assert images.shape == (5, *shape)
    assert images.abs().max() <= 1.0
    assert discriminator(images).shape == (5,)
    assert discriminator.features(images).shape[-2:] == (4, 4)
    mu, logvar = encoder(images)
    assert mu.shape == logvar.shape == (5, 8)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 16, 32), (1, 4, 4), (16,)])
def test_conv_nets_refuse_shapes_they_cannot_build(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="power-of-two|shape"):
        DCGANGenerator(latent_dim=8, data_shape=shape)


def test_mlp_nets_handle_rows_and_refuse_images() -> None:
    generator = MLPGenerator(latent_dim=4, data_shape=(12,), hidden_dims=[16])
    rows = generator(torch.randn(6, 4))
    assert rows.shape == (6, 12) and rows.abs().max() <= 1.0
    assert MLPDiscriminator(data_shape=(12,), hidden_dims=[16])(rows).shape == (6,)
    with pytest.raises(ValueError, match=r"\(D,\)"):
        MLPGenerator(latent_dim=4, data_shape=(1, 16, 16))


def test_norm_choice_decides_opacus_compatibility() -> None:
    shape = (1, 16, 16)
    assert ModuleValidator.validate(DCGANDiscriminator(data_shape=shape, norm="group"), strict=False) == []
    assert ModuleValidator.validate(DCGANDiscriminator(data_shape=shape, norm="layer"), strict=False) == []
    assert ModuleValidator.validate(DCGANDiscriminator(data_shape=shape, norm="batch"), strict=False) != []
    assert ModuleValidator.validate(MLPDiscriminator(data_shape=(12,)), strict=False) == []


def test_every_network_rebuilds_from_its_kwargs() -> None:
    torch.manual_seed(0)
    networks = [
        DCGANGenerator(latent_dim=8, data_shape=(3, 16, 16), base_channels=4),
        DCGANDiscriminator(data_shape=(3, 16, 16), base_channels=4, norm="group"),
        MLPGenerator(latent_dim=4, data_shape=(12,), hidden_dims=[16], batch_norm=False),
        MLPDiscriminator(data_shape=(12,), hidden_dims=[16]),
        PGGANGenerator(latent_dim=8, data_shape=(1, 16, 16), fmap_base=32, fmap_max=16),
        PGGANDiscriminator(data_shape=(1, 16, 16), fmap_base=32, fmap_max=16),
        VAEGANEncoder(latent_dim=8, data_shape=(1, 16, 16), base_channels=4),
    ]
    assert {f"{type(n).__module__}.{type(n).__qualname__}" for n in networks} == set(NETWORK_CLASSES)
    for network in networks:
        rebuilt = type(network)(**network.kwargs)
        assert rebuilt.state_dict().keys() == network.state_dict().keys()
        assert all(
            a.shape == b.shape
            for a, b in zip(rebuilt.state_dict().values(), network.state_dict().values(), strict=False)
        )


def test_pggan_grows_and_always_outputs_the_target_resolution() -> None:
    torch.manual_seed(0)
    generator = PGGANGenerator(latent_dim=8, data_shape=(3, 16, 16), fmap_base=32, fmap_max=16)
    discriminator = PGGANDiscriminator(data_shape=(3, 16, 16), fmap_base=32, fmap_max=16)
    z = torch.randn(4, 8)
    for stage, resolution in enumerate([4, 8, 16]):
        generator.set_growth(stage, 1.0)
        discriminator.set_growth(stage, 1.0)
        native = generator.synthesize(z)
        assert native.shape == (4, 3, resolution, resolution)
        assert generator(z).shape == (4, 3, 16, 16)
        assert discriminator(native).shape == (4,)
        assert discriminator(generator(z)).shape == (4,)  # larger inputs are pooled to the stage


def test_pggan_fade_in_blends_the_previous_stage() -> None:
    torch.manual_seed(0)
    generator = PGGANGenerator(latent_dim=8, data_shape=(1, 16, 16), fmap_base=32, fmap_max=16)
    z = torch.randn(2, 8)
    generator.set_growth(1, 0.0)
    faded_out = generator.synthesize(z)
    generator.set_growth(0, 1.0)
    previous = generator.synthesize(z)
    # alpha = 0 shows exactly the previous stage, upsampled.
    torch.testing.assert_close(faded_out, torch.nn.functional.interpolate(previous, scale_factor=2))
    generator.set_growth(1, 0.5)
    halfway = generator.synthesize(z)
    generator.set_growth(1, 1.0)
    assert not torch.allclose(halfway, faded_out) and not torch.allclose(halfway, generator.synthesize(z))
    with pytest.raises(ValueError):
        generator.set_growth(3, 1.0)


def test_minibatch_stddev_with_a_reference_groups_each_sample_with_it_alone() -> None:
    torch.manual_seed(0)
    x, reference = torch.randn(5, 4, 4, 4), torch.randn(3, 4, 4, 4)
    grouped = minibatch_stddev(x, reference=reference)
    assert grouped.shape == (5, 5, 4, 4)
    torch.testing.assert_close(grouped[:, :4], x)
    for i in range(5):  # each sample's channel is the batch statistic of {x_i} + reference
        alone = minibatch_stddev(torch.cat([x[i : i + 1], reference]))[0, 4]
        torch.testing.assert_close(grouped[i, 4], alone)
    batch = minibatch_stddev(x)[:, 4]  # without a reference: one statistic over the batch (training)
    expected = torch.sqrt(x.var(dim=0, unbiased=False) + 1e-8).mean()
    torch.testing.assert_close(batch, expected.expand(5, 4, 4))


@pytest.mark.parametrize("stage, alpha", [(2, 1.0), (1, 0.5), (0, 1.0)])
def test_pggan_discriminator_scores_a_query_the_same_in_any_batch(stage: int, alpha: float) -> None:
    torch.manual_seed(0)
    discriminator = PGGANDiscriminator(data_shape=(3, 16, 16), fmap_base=32, fmap_max=16)
    discriminator.set_growth(stage, alpha)
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        batched = discriminator.eval()(x)
        alone = torch.cat([discriminator(x[i : i + 1]) for i in range(8)])
        order = torch.randperm(8)
        shuffled = discriminator(x[order])
        trained = discriminator.train()(x)
        trained_alone = discriminator(x[:1])
    torch.testing.assert_close(alone, batched, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(shuffled, batched[order], rtol=1e-6, atol=1e-6)
    # Training still takes the statistic over the batch: a sample's value moves with its batch-mates.
    assert not torch.allclose(trained_alone, trained[:1])


def test_pggan_scoring_reference_is_fixed_settable_and_not_a_weight() -> None:
    torch.manual_seed(0)
    first = PGGANDiscriminator(data_shape=(1, 16, 16), fmap_base=32, fmap_max=16)
    torch.manual_seed(1)
    second = PGGANDiscriminator(data_shape=(1, 16, 16), fmap_base=32, fmap_max=16)
    assert first.scoring_reference.shape == (SCORING_GROUP_SIZE - 1, 1, 16, 16)
    torch.testing.assert_close(first.scoring_reference, second.scoring_reference, rtol=0, atol=0)
    assert first.scoring_reference.abs().max() <= 1
    assert "scoring_reference" not in first.state_dict()  # exports are unchanged
    torch.manual_seed(2)
    expected = torch.rand(3)
    torch.manual_seed(2)
    scoring_reference_images((1, 16, 16))
    torch.testing.assert_close(torch.rand(3), expected)  # the global RNG is untouched
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    before = first.eval()(x)
    first.set_scoring_reference(torch.zeros(7, 1, 16, 16))
    assert first.scoring_reference.shape == (7, 1, 16, 16)
    assert not torch.allclose(first(x), before)
    with pytest.raises(ValueError, match="scoring reference"):
        first.set_scoring_reference(torch.zeros(3, 3, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        first.set_scoring_reference(torch.full((3, 1, 16, 16), float("nan")))


def test_growth_schedule_alternates_fade_in_and_stabilisation() -> None:
    expected = {
        0: (0, 1.0),
        9: (0, 1.0),
        10: (1, 0.0),
        15: (1, 0.5),
        20: (1, 1.0),
        29: (1, 1.0),
        30: (2, 0.0),
        35: (2, 0.5),
        40: (2, 1.0),
        49: (2, 1.0),
        10**6: (2, 1.0),
    }
    for images_shown, stage_alpha in expected.items():
        assert growth_schedule(images_shown, 10, max_stage=2) == stage_alpha, images_shown


def test_real_images_fade_like_the_generator() -> None:
    real = torch.rand(2, 1, 16, 16)
    coarse = torch.nn.functional.avg_pool2d(real, 4)
    torch.testing.assert_close(fade_real(real, 1, 0.0), torch.nn.functional.interpolate(coarse, scale_factor=2))
    torch.testing.assert_close(fade_real(real, 1, 1.0), torch.nn.functional.avg_pool2d(real, 2))
    torch.testing.assert_close(fade_real(real, 2, 1.0), real)
