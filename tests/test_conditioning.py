import torch

from gen3dface.core.cameras import Cameras, target_ring
from gen3dface.volume.conditioning import DepthWiseAttention, FrustumNet, HybridVolume, camera_embedding
from gen3dface.mesh.estimate import estimate_mesh
from gen3dface.core.samples import sample_photo
from gen3dface.volume.grid import voxelize_mesh


def batch_cameras(B: int, N: int, size: int) -> Cameras:
    ring = target_ring(N, image_size=size)
    return ring.batched(B)


def test_depthwise_attention_reads_the_depth_samples():
    torch.manual_seed(0)
    att = DepthWiseAttention(8, 5, heads=2)
    x, ctx = torch.randn(3, 8, 4, 4), torch.randn(3, 5, 6, 4, 4)
    assert torch.equal(att(x, ctx), x)  # zero-initialised output: a pretrained UNet is untouched
    torch.nn.init.normal_(att.out.weight)
    # a context constant along depth: attention weights cannot matter, the output is out(v)
    const = ctx[:, :, :1].expand(-1, -1, 6, -1, -1)
    v = att.kv(const[:, :, 0].permute(0, 2, 3, 1))[..., 8:]  # (3, 4, 4, 8)
    want = x + att.out(v).permute(0, 3, 1, 2)
    assert torch.allclose(att(x, const), want, atol=1e-5)
    # each pixel only sees its own ray: changing another pixel's context leaves it alone
    ctx2 = ctx.clone()
    ctx2[:, :, :, 0, 0] += 5
    diff = (att(x, ctx2) - att(x, ctx)).abs().amax((0, 1))
    assert diff[0, 0] > 0 and float(diff.flatten()[1:].max()) == 0.0


def test_depthwise_attention_equals_attention_over_lifted_keys_and_values():
    """The module pulls queries back to the context's channels; this is the textbook form it must equal:
    every depth sample lifted to keys and values, softmax over the D samples of each pixel, per head."""
    torch.manual_seed(1)
    att = DepthWiseAttention(12, 5, heads=3)
    torch.nn.init.normal_(att.out.weight)
    x, ctx = torch.randn(2, 12, 3, 4), torch.randn(2, 5, 7, 3, 4)
    P, H, c = 2 * 3 * 4, 3, 4
    q = att.q(att.norm(x).permute(0, 2, 3, 1).reshape(P, 12)).reshape(P, H, 1, c)
    k, v = att.kv(ctx.permute(0, 3, 4, 2, 1).reshape(P, 7, 5)).chunk(2, -1)  # (P, D, C) each
    k, v = (t.reshape(P, 7, H, c).transpose(1, 2) for t in (k, v))  # (P, H, D, c)
    a = torch.nn.functional.scaled_dot_product_attention(q, k, v).reshape(P, 12)
    want = x + att.out(a).reshape(2, 3, 4, 12).permute(0, 3, 1, 2)
    assert torch.allclose(att(x, ctx), want, atol=1e-5)


def test_volume_to_frustum_to_attention_shapes_and_gradients():
    torch.manual_seed(0)
    B, N, C, s, V, D, E, Fc = 2, 4, 4, 16, 16, 8, 16, 8
    cams = batch_cameras(B, N, 128)
    mesh = estimate_mesh(sample_photo("astronaut"))
    vox = voxelize_mesh(torch.as_tensor(mesh.vertices), torch.as_tensor(mesh.faces), V)
    hybrid, frustum = HybridVolume(C, Fc, E, V), FrustumNet(Fc, E, D)
    attn = DepthWiseAttention(12, Fc, heads=3)
    torch.nn.init.normal_(attn.out.weight, std=0.1)
    x_t, temb = torch.randn(B, N, C, s, s), torch.randn(B, E)
    vol = hybrid(x_t, temb, cams, [vox, vox[: len(vox) // 2]])
    assert vol.shape == (B, Fc, V, V, V)
    levels = frustum(vol, temb, cams, s)
    assert [tuple(t.shape) for t in levels] == [
        (B, N, Fc, D, s, s),
        (B, N, Fc, D // 2, s // 2, s // 2),
        (B, N, Fc, D // 4, s // 4, s // 4),
    ]
    unet_feat = torch.randn(B * N, 12, s, s)
    out = attn(unet_feat, levels[0].flatten(0, 1))
    assert out.shape == unet_feat.shape
    out.square().mean().backward()
    params = (
        dict(hybrid.named_parameters())
        | {f"f.{k}": p for k, p in frustum.named_parameters()}
        | {f"a.{k}": p for k, p in attn.named_parameters()}
    )
    missing = [k for k, p in params.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing  # level 0 depends on every frustum layer through the U-Net's skips
    assert camera_embedding(cams).shape == (B, N, 6)
