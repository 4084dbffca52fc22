from utils.core.files import read_json, write_json


def test_json_round_trip_sorted_and_no_temporary_left(tmp_path):
    path = write_json(tmp_path / "sub" / "x.json", {"b": 1, "a": [1, 2]})
    assert read_json(path) == {"a": [1, 2], "b": 1}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
