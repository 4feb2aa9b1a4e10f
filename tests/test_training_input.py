"""The training input pipeline: decoding processes give the batches the training process would
(every epoch's augmentation too, also in persistent processes), the same weights follow, loader
and precision plans per device, and a training step that reads nothing back from the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from ray_pipeline.models import build_video_text_model
from ray_pipeline.models.preprocess import Preprocess
from ray_pipeline.training.data import ClipDataset, LoaderPlan, plan_loader, training_loader
from ray_pipeline.training.loop import choose_precision, train_epoch
from ray_pipeline.training.losses import build_loss
from ray_pipeline.video_io import write_mp4

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CLASSES = ["wave", "run", "jump"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        path = str(root / f"c{i}.mp4")
        write_mp4(rng.integers(0, 255, (12, 40, 40, 3), dtype=np.uint8), path)
        paths.append(path)
    return paths


def _dataset(clips: list[str], backbone: str) -> ClipDataset:
    return ClipDataset(clips, [i % 3 for i in range(len(clips))], [i / 10 for i in range(len(clips))],
                       Preprocess.from_pretrained(backbone), 4, train=True, seed=3,
                       real=[i % 4 == 0 for i in range(len(clips))])


def _epochs(dataset: ClipDataset, plan: LoaderPlan, epochs: int = 3) -> list[list[tuple]]:
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3, drop_last=True)
    loader = training_loader(dataset, sampler, 3, plan)
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out.append([tuple(t.clone() for t in batch) for batch in loader])  # clone keeps the strides
    return out


def test_decoding_processes_give_the_training_processs_batches_every_epoch(clips, tiny_clip):
    dataset = _dataset(clips, tiny_clip)
    inline = _epochs(dataset, plan_loader({}, "cpu", 2.0))
    assert plan_loader({}, "cpu", 2.0).num_workers == 0
    # Two persistent decoding processes: they keep their own dataset copy from epoch 0, yet decode
    # each epoch's offsets and crops, because the epoch travels with every index.
    forked = _epochs(dataset, LoaderPlan(num_workers=2, pin_memory=False, prefetch_factor=2, persistent_workers=True))
    assert len(inline) == 3 and [len(e) for e in inline] == [2, 2, 2]  # 8 clips, batches of 3, last dropped
    for a_epoch, b_epoch in zip(inline, forked):
        for a, b in zip(a_epoch, b_epoch):
            assert all(torch.equal(x, y) for x, y in zip(a, b))
            # The same memory layout too (channels-last frames): convolutions round by layout.
            assert all(x.stride() == y.stride() for x, y in zip(a, b))
    assert not torch.equal(inline[0][0][0], inline[1][0][0])  # a new epoch draws new samples
    pixels, labels, uncertainty, real = inline[0][0]
    assert pixels.shape == (3, 4, 3, 32, 32) and uncertainty.dtype == torch.float64 and real.dtype == torch.bool


def test_decoding_processes_leave_the_weights_as_they_were(clips, tiny_clip):
    def train(plan: LoaderPlan) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build_video_text_model("tcclip", tiny_clip)
        dataset = _dataset(clips, tiny_clip)
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3, drop_last=True)
        loader = training_loader(dataset, sampler, 4, plan)
        optimizer = torch.optim.AdamW(model.param_groups(1e-3), weight_decay=1e-3)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        sums = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            sums.append(train_epoch(model, loader, build_loss("ul", weight=0.3), optimizer, scheduler, None, CLASSES,
                                    torch.device("cpu"), None))
        return {"loss": torch.stack(sums), **model.state_dict()}

    inline = train(plan_loader({}, "cpu", 1.0))
    forked = train(LoaderPlan(num_workers=2, pin_memory=False, prefetch_factor=1, persistent_workers=True))
    assert inline.keys() == forked.keys()
    assert all(torch.equal(inline[k], forked[k]) for k in inline)
    assert inline["loss"][:, 1].tolist() == [8.0, 8.0]  # clips per epoch, summed on the device


def test_a_training_step_reads_nothing_back_from_the_device(tiny_clip):
    """On the meta device any host read of a device value (``.item()``, ``bool()``, a blocking
    copy back) fails, so a step that runs there waits on no GPU: model, TC-CLIP's token merging,
    the loss with its input checks (on the loader's CPU tensors), AdamW and the loss sum."""
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.zeros(1, device="meta").item()  # the premise
    for loss, real in (("ul", [False, False]), ("uf", [True, False]), ("uw", [False, True])):
        torch.manual_seed(0)
        model = build_video_text_model("tcclip", tiny_clip).to("meta")
        optimizer = torch.optim.AdamW(model.param_groups(1e-4), weight_decay=1e-3)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        g = torch.Generator().manual_seed(0)
        batches = [(torch.randn(2, 3, 3, 32, 32, generator=g), torch.tensor([0, 2]),
                    torch.tensor([0.1, 0.7], dtype=torch.float64), torch.tensor(real)) for _ in range(2)]
        out = train_epoch(model, batches, build_loss(loss, weight=0.3, uf_threshold=0.5), optimizer, scheduler, None,
                          CLASSES, torch.device("meta"), None)
        assert out.device.type == "meta" and out.shape == (2,)
    # The checks still run, on the CPU tensors the loader hands over.
    bad = [(torch.randn(2, 3, 3, 32, 32), torch.tensor([0, 2]), torch.tensor([0.1, 1.5], dtype=torch.float64),
            torch.tensor([False, False]))]
    with pytest.raises(ValueError, match="normalised to"):
        train_epoch(model, bad, build_loss("ul"), optimizer, scheduler, None, CLASSES, torch.device("meta"), None)


def test_loader_plan_per_device():
    gpu = plan_loader({}, "cuda", 6.0)
    assert (gpu.num_workers, gpu.pin_memory, gpu.prefetch_factor, gpu.persistent_workers) == (5, True, 2, True)
    assert plan_loader({}, "cuda", 1.0).num_workers == 0  # the training process keeps its one CPU
    cpu = plan_loader({"num_workers": 2, "pin_memory": True, "prefetch_factor": 4}, "cpu", 1.0)
    assert (cpu.num_workers, cpu.pin_memory, cpu.prefetch_factor) == (2, False, 4)  # nothing to pin for
    assert plan_loader({"persistent_workers": True}, "cpu", 2.0).kwargs() == {"num_workers": 0, "pin_memory": False}
    assert "3 decoding process(es)" in plan_loader({"num_workers": 3}, "cuda", 2.0).describe()
    # On CPU one process decodes where the worker's torch threads leave a CPU share idle.
    assert plan_loader({}, "cpu", 1.5, torch_threads=1).num_workers == 1
    assert plan_loader({}, "cpu", 2.0, torch_threads=2).num_workers == 0
    assert plan_loader({"num_workers": 0}, "cpu", 4.0, torch_threads=1).num_workers == 0


def test_precision_is_bf16_only_where_the_gpu_has_it(monkeypatch):
    assert choose_precision("bf16", torch.device("cpu")) == ("no", "fp32 on cpu")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    amp, note = choose_precision("bf16", torch.device("cuda", 0))
    assert amp == "fp16" and "GradScaler" in note and "Tesla T4 has no bf16" in note
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert choose_precision("bf16", torch.device("cuda", 0))[0] == "bf16"
    assert choose_precision("fp16", torch.device("cuda", 0)) == ("fp16", "fp16 autocast on Tesla T4 with a GradScaler")
    assert choose_precision("no", torch.device("cuda", 0))[0] == "no"


@pytest.mark.integration
def test_ray_train_worker_with_decoding_processes_trains_the_same(tmp_path, ray_cluster, tiny_clip):
    """The loader's processes are forked inside the Ray Train worker; the epochs' losses match a run
    that decodes in the worker itself, and the log says how each ran. By default the worker (1.5 of
    2 CPUs, one torch thread) decodes in one process of its own."""
    import json

    from ray_pipeline.config import ExperimentConfig
    from ray_pipeline.runstore import RunStore
    from ray_pipeline.stages.train import RESULT
    from tests.helpers import TINY_CLASSES, console_to, run_stage, write_synthetic_clips

    losses, logs = {}, {}
    for workers in (0, None, 2):
        store = RunStore(tmp_path / f"w{workers}")
        cfg = ExperimentConfig.model_validate({
            "ray": {"num_cpus": 2}, "prompts": {"classes": TINY_CLASSES},
            "generate": {"backend": "cogvideox", "clips_per_class": 4},
            "train": {"model": "tcclip", "backbone": tiny_clip, "epochs": 2, "batch_size": 8, "num_frames": 4,
                      "lr": 1e-3, "warmup_epochs": 0, "loader": {"num_workers": workers}}})
        write_synthetic_clips(store, cfg)
        lines: list[str] = []
        run_stage(cfg, store, "train", console_to(lines.append))
        result = json.loads(store.read_text(RESULT))
        folder = store.local_path(f"train/ray/{result['phases'][0]['name']}")
        infos = sorted((json.loads(p.read_text()) for p in folder.glob("checkpoint_*/train_state.json")),
                       key=lambda i: i["epoch"])
        losses[workers] = [i["loss"] for i in infos]
        logs[workers] = "\n".join(lines)
    assert len(losses[0]) == 2 and losses[0] == losses[None] == losses[2]
    assert "fp32 on cpu; decoding in the training process" in logs[0]
    assert "1 decoding process(es), 2 batches ahead each, persistent" in logs[None]
    assert "2 decoding process(es), 2 batches ahead each, persistent" in logs[2]


def _reference_clip_tensor(frames: np.ndarray, pre: Preprocess, *, train: bool, rng: np.random.Generator):
    """The former preprocessing: the whole clip made float, then cropped, flipped and resized."""
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    _, _, h, w = x.shape
    short = min(h, w)
    if train:
        side = max(1, int(round(short * rng.uniform(0.66, 1.0))))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        x = x[:, :, top:top + side, left:left + side]
        if rng.random() < 0.5:
            x = x.flip(-1)
    else:
        top, left = (h - short) // 2, (w - short) // 2
        x = x[:, :, top:top + short, left:left + short]
    if x.shape[-1] != pre.image_size:
        x = F.interpolate(x, size=(pre.image_size, pre.image_size), mode="bilinear", align_corners=False,
                          antialias=True)
    return (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)


@pytest.mark.parametrize(("height", "width", "size"), [(480, 720, 224), (64, 64, 64), (48, 64, 32), (250, 300, 224)])
def test_cropping_before_the_float_conversion_changes_no_value(height, width, size):
    from ray_pipeline.models.preprocess import clip_tensor

    pre = Preprocess(size, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28))
    frames = np.random.default_rng(1).integers(0, 255, (4, height, width, 3), dtype=np.uint8)
    for train in (True, False):
        for seed in range(4):
            got = clip_tensor(frames, pre, train=train, rng=np.random.default_rng(seed))
            want = _reference_clip_tensor(frames, pre, train=train, rng=np.random.default_rng(seed))
            assert torch.equal(got, want)
