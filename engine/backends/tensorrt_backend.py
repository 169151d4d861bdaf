"""TensorRT backend: a plan built from the model's ONNX (cached per GPU and TensorRT version), run
with the TensorRT 10 Python API, I/O through torch CUDA tensors on a CUDA stream (no pycuda, no C++).

    eng = Engine.load("resnet18-unet", backend="tensorrt", precision="fp16")
    eng = Engine.load("model.onnx", backend="tensorrt", plan="model.plan")   # a plan from 'colorize build'

Plans: with ``plan=`` the given plan is used when its sidecar matches this GPU, TensorRT version,
ONNX, precision and profile; otherwise (or without ``plan=``) a plan is built into the artifact
cache, keyed by all of those, so a plan built for another GPU or TensorRT version is never loaded.

At load a seeded probe batch runs through the plan and through ONNX Runtime FP32 (CPU), and the
backend refuses to load past the named tolerance (``TOLERANCES``). Batches larger than the
profile's max batch run in chunks; H/W outside the profile raise ``BackendError`` naming the
profile.

This backend has not run in this project's CI: TensorRT cannot be installed on any machine here.
Its non-TensorRT logic (profiles, shape checks, dtype mapping, sidecar and cache keys) is unit-tested.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

from colorize.artifacts.model_ref import ModelRef
from colorize.backends.base import Backend, BackendError, model_description, require, static_batch_of
from colorize.backends.torch_cuda import Tolerance, batch_chunks, cuda_unavailable_reason, parity

TOLERANCES: dict[str, Tolerance] = {
    # Same budget as the torch-cuda backend: FP16 storage, FP32 accumulation; 2.2 ab units < 1 JND.
    "fp16": Tolerance(2e-2, 2e-3, "FP16 tactics with FP32 accumulation; 2.2 ab units < 1 JND"),
    # TensorRT enables TF32 for FP32 networks by default (10-bit mantissa products).
    "fp32": Tolerance(1e-2, 1e-3, "TF32 tactics, on by default in TensorRT"),
}

#: TensorRT DataType name -> torch dtype name
TRT_TO_TORCH = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}


def torch_dtype(trt_dtype):
    """The torch dtype for a ``tensorrt.DataType`` (by name). Raises BackendError for others (FP8, INT4)."""
    import torch

    name = getattr(trt_dtype, "name", str(trt_dtype)).rsplit(".", 1)[-1]
    if name not in TRT_TO_TORCH:
        raise BackendError(f"unsupported TensorRT I/O dtype {name}; supported: {', '.join(TRT_TO_TORCH)}")
    return getattr(torch, TRT_TO_TORCH[name])


def probe_shape(profile, name: str, stride: int) -> tuple[int, int, int, int]:
    """A small [N,1,H,W] inside the profile: N = min(2, max batch), H = W = 32 clamped to the profile."""
    lo, _, hi = profile.shapes[name]
    n = max(lo[0], min(2, hi[0]))
    side = []
    for axis in (2, 3):
        s = min(max(32, lo[axis]), hi[axis])
        s -= s % stride
        side.append(max(s, lo[axis]))
    return (n, lo[1], side[0], side[1])


class TensorRTBackend(Backend):
    name = "tensorrt"
    precisions = ("fp16", "fp32")
    thread_safe = False  # one execution context

    @classmethod
    def available(cls) -> str | None:
        if importlib.util.find_spec("tensorrt") is None:
            return 'tensorrt is not installed (pip install ".[trt]")'
        return cuda_unavailable_reason()

    def __init__(
        self,
        ref: ModelRef,
        precision: str = "fp16",
        plan: str | None = None,
        min_shapes: str | None = None,
        opt_shapes: str | None = None,
        max_shapes: str | None = None,
        workspace_gb: float = 4.0,
        check: bool = True,
        cache_dir: str | None = None,
        io=None,
    ):
        super().__init__(precision)
        reason = self.available()
        if reason:
            raise BackendError(f"tensorrt backend unavailable: {reason}")
        trt = require("tensorrt", "trt")
        torch = require("torch", "torch")
        from colorize.artifacts.cache import ArtifactCache
        from colorize.artifacts.onnx_files import source_onnx
        from colorize.export.tensorrt_build import build_target
        from colorize.export.trt_profile import onnx_inputs, parse_shapes
        from colorize.model_io import model_stride

        self.trt, self.torch = trt, torch
        self.onnx = source_onnx(ref, ArtifactCache(cache_dir))
        inputs = onnx_inputs(self.onnx)
        self.stride = model_stride(ref)
        shapes = [parse_shapes(s, inputs) for s in (min_shapes, opt_shapes, max_shapes)]
        target = build_target(self.onnx, precision, *shapes, tensorrt_version=trt.__version__)
        self.profile = target.profile
        lo, _, hi = next(iter(self.profile.shapes.values()))
        fixed_n = lo[0] if lo[0] == hi[0] else None
        self.static_batch = static_batch_of(model_description(ref, io), fixed_n)  # a fixed N: chunks of it
        self.plan_path = self._plan(target, plan, int(workspace_gb * (1 << 30)), cache_dir)

        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
        if self.engine is None:
            raise BackendError(f"{self.plan_path}: TensorRT could not deserialize the plan")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise BackendError(f"{self.plan_path}: expected one input and one output, got {self.inputs} / {self.outputs}")
        self.input_dtype = torch_dtype(self.engine.get_tensor_dtype(self.inputs[0]))
        self.output_dtype = torch_dtype(self.engine.get_tensor_dtype(self.outputs[0]))
        self.stream = torch.cuda.Stream()
        self.parity: dict[str, float] | None = self._check() if check else None

    def _plan(self, target, plan: str | None, workspace_bytes: int, cache_dir: str | None) -> Path:
        from colorize.artifacts.cache import ArtifactCache
        from colorize.export.tensorrt_build import build_plan
        from colorize.export.trt_plan import plan_cache_key, plan_mismatches, read_plan_info, sha256_file

        if plan is not None:
            try:
                reasons = plan_mismatches(read_plan_info(plan), target, sha256_file(plan))
            except (FileNotFoundError, ValueError) as e:
                reasons = [str(e)]
            if not reasons:
                return Path(plan)
            warnings.warn(f"{plan}: not usable here ({'; '.join(reasons)}); building a plan in the cache", stacklevel=4)

        def build(tmp: Path) -> dict:
            shapes = {k: {n: s[i] for n, s in target.profile.shapes.items()} for i, k in enumerate(("min", "opt", "max"))}
            result = build_plan(
                self.onnx, tmp / "model.plan", target.precision, shapes["min"], shapes["opt"], shapes["max"],
                workspace_bytes=workspace_bytes, log=lambda s: None,
            )
            return {"build_seconds": result.info.build_seconds}

        entry = ArtifactCache(cache_dir).get_or_build(plan_cache_key(target, workspace_bytes), build)
        return entry.path("model.plan")

    def _check(self) -> dict[str, float]:
        ort = require("onnxruntime", "cpu")
        shape = probe_shape(self.profile, self.inputs[0], self.stride)
        probe = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
        sess = ort.InferenceSession(str(self.onnx), providers=["CPUExecutionProvider"])
        reference = sess.run(None, {sess.get_inputs()[0].name: probe})[0]
        return parity(reference, self._run(probe), TOLERANCES[self.precision], f"tensorrt {self.precision}")

    def forward_device(self, x):
        """CUDA tensor [N,1,H,W] -> float32 CUDA tensor [N,2,H,W] (chunked by the profile's max batch)."""
        torch = self.torch
        name_in, name_out = self.inputs[0], self.outputs[0]
        outs = []
        for rows in batch_chunks(x.shape[0], self.profile.max_batch(name_in)):
            xb = x[rows].to(self.input_dtype).contiguous()
            try:
                self.profile.check(name_in, tuple(xb.shape))
            except ValueError as e:
                raise BackendError(str(e)) from None
            if not self.context.set_input_shape(name_in, tuple(xb.shape)):
                raise BackendError(f"TensorRT rejected input shape {list(xb.shape)} for {name_in!r}")
            out = torch.empty(tuple(self.context.get_tensor_shape(name_out)), dtype=self.output_dtype, device=x.device)
            self.context.set_tensor_address(name_in, xb.data_ptr())
            self.context.set_tensor_address(name_out, out.data_ptr())
            self.stream.wait_stream(torch.cuda.current_stream())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError("TensorRT execute_async_v3 failed")
            torch.cuda.current_stream().wait_stream(self.stream)
            xb.record_stream(self.stream)
            out.record_stream(self.stream)
            outs.append(out.float())
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _run(self, l: np.ndarray) -> np.ndarray:
        x = self.torch.from_numpy(np.ascontiguousarray(l, dtype=np.float32)).cuda()
        return self.forward_device(x).cpu().numpy()

    def _close(self) -> None:
        self.context = None
        self.engine = None
        self.runtime = None
