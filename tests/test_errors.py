import pytest

from cmt_geo import errors


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.ConfigError, ValueError),
        (errors.InvalidRasterError, ValueError),
        (errors.DatasetNotFoundError, FileNotFoundError),
        (errors.OutputExistsError, FileExistsError),
        (errors.BackendUnavailableError, RuntimeError),
        (errors.CheckpointError, ValueError),
    ],
)
def test_errors_are_catchable_as_cmtgeo_and_builtin(error: type[Exception], builtin: type[Exception]) -> None:
    with pytest.raises(errors.CmtGeoError):
        raise error("x")
    with pytest.raises(builtin):
        raise error("x")


def test_canceled_error_is_a_cmtgeo_error() -> None:
    assert issubclass(errors.CanceledError, errors.CmtGeoError)
