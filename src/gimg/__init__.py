"""gimg: how image search portrays occupations by gender, compared with the census.

The Python API mirrors the CLI: run_download, run_crop, run_classify, run_analyze, run_pipeline and
run_evaluate, which take the options objects DownloadOptions, CropOptions, ClassifyOptions, AnalyzeOptions,
EvaluateOptions, ExecutionOptions (or a whole StudyConfig); for studies of several engines, markets or waves,
run_search, run_study_download, run_study_analyze and run_compare; and for `gimg label`, draw_sample,
serve_labels, import_labels and run_label_report, with SampleOptions and ServeOptions. They are imported on
first use, so `import gimg` stays light.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "run_download": "download",
    "run_crop": "faces",
    "run_classify": "classify",
    "run_analyze": "pipeline",
    "run_pipeline": "pipeline",
    "run_evaluate": "evaluate",
    "draw_sample": "validation",
    "import_labels": "validation",
    "serve_labels": "labelserver",
    "run_label_report": "labelreport",
    "run_search": "search",
    **{name: "pipeline" for name in ("run_study_download", "run_study_analyze", "run_compare")},
    **{name: "options" for name in ("DownloadOptions", "CropOptions", "ClassifyOptions", "AnalyzeOptions",
                                    "EvaluateOptions", "ExecutionOptions", "StudyConfig", "SampleOptions",
                                    "ServeOptions")},
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'gimg' has no attribute {name!r}")
