"""The one place that picks the engine a translation runs on: PyTorch for a model directory
(several: an ensemble), CTranslate2 for an export (`fren-nmt export`). Neither translator
imports the other; `translate` and `serve` ask here."""

from __future__ import annotations

from pathlib import Path

from pipeline.decoding.translate import Translator
from pipeline.errors import PipelineError

ENGINES = ("auto", "pytorch", "ctranslate2")


def open_translator(path: str | Path | list[str | Path], device: str = "cpu",
                    engine: str = "auto") -> Translator:
    """What `translate` and `serve` decode with. A model directory (several: an ensemble)
    runs on PyTorch; a CTranslate2 export (`fren-nmt export`) on CTranslate2. `engine`
    ctranslate2 exports a model directory's Transformer at start, to a temporary folder."""
    import atexit
    import shutil
    import tempfile

    from pipeline.models.export import export, is_export

    paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
    if engine not in ENGINES:
        raise PipelineError(f"--engine {engine!r}: not one of {', '.join(ENGINES)}")
    exported = [p for p in paths if is_export(p)]
    if (exported or engine == "ctranslate2") and len(paths) > 1:
        raise PipelineError(f"{(exported or paths)[0]}: an ensemble runs on PyTorch; give "
                            "model directories (models/VARIANT), not CTranslate2 exports")
    if exported and engine == "pytorch":
        raise PipelineError(f"{paths[0]}: a CTranslate2 export runs on CTranslate2 "
                            "(--engine ctranslate2 or auto); for PyTorch give its model directory")
    if not exported and engine != "ctranslate2":
        return Translator(paths, device=device)
    from pipeline.decoding.ctranslate import CT2Translator  # CTranslate2 is loaded when asked

    if exported:
        return CT2Translator(paths[0], device=device)
    tmp = Path(tempfile.mkdtemp(prefix="fren-nmt-ct2-"))
    atexit.register(shutil.rmtree, tmp, True)
    return CT2Translator(export(paths[0], tmp / "model"), device=device)
