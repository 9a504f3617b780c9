"""Article metadata read on demand: the article table, id lookup by hash, integer columns, title search."""
import numpy as np
import pytest

from recommender.index.metadata import (
    ArticleTable,
    RowLookup,
    TitleIndex,
    codes_of,
    encode_column,
    id_hash,
    jsonl_with_offsets,
    map_file,
    sorted_id_hashes,
)

RECORDS = [{"id": f"a{i}", "title": f"Titel {i} über Ümlaute", "n": i} for i in range(5)]


def table_on_disk(tmp_path, records=RECORDS):
    blob, offsets = jsonl_with_offsets(records)
    (tmp_path / "articles.jsonl").write_bytes(blob)
    return ArticleTable.open(tmp_path / "articles.jsonl", offsets)


def test_jsonl_offsets_delimit_each_record():
    blob, offsets = jsonl_with_offsets(RECORDS)
    assert offsets.dtype == np.int64 and offsets.shape == (6,) and offsets[-1] == len(blob)
    assert blob[offsets[2]:offsets[3]].decode("utf-8").startswith('{"id": "a2"')


def test_the_article_table_decodes_rows_on_access_and_extends_without_copying(tmp_path):
    table = table_on_disk(tmp_path)
    assert len(table) == 5 and table[3] == RECORDS[3] and table[-1] == RECORDS[4]
    assert table[1:3] == RECORDS[1:3] and list(table) == RECORDS
    longer = table.extended([{"id": "new"}])
    assert len(longer) == 6 and longer[5] == {"id": "new"} and longer[0] == RECORDS[0] and len(table) == 5
    with pytest.raises(IndexError):
        table[5]
    with pytest.raises(TypeError):
        table["a1"]


def test_an_empty_file_maps_to_no_bytes(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert map_file(tmp_path / "empty") == b""


def test_ids_are_found_by_hash_and_checked_against_the_row(tmp_path):
    table = table_on_disk(tmp_path)
    hashes, rows = sorted_id_hashes([r["id"] for r in RECORDS])
    assert hashes.dtype == np.uint64 and (np.diff(hashes.astype(np.float64)) >= 0).all()
    lookup = RowLookup(hashes, rows, table)
    assert [lookup[r["id"]] for r in RECORDS] == list(range(5)) and len(lookup) == 5
    assert "a9" not in lookup and 3 not in lookup and lookup.get("a9") is None
    assert sorted(lookup) == sorted(r["id"] for r in RECORDS)


def test_a_hash_collision_is_resolved_by_the_stored_id(tmp_path):
    # Two rows filed under one hash (as two ids of equal 64-bit hash would be): the row's own id decides.
    table = table_on_disk(tmp_path)
    same = np.uint64(id_hash("a1"))
    lookup = RowLookup(np.array([same, same], dtype=np.uint64), np.array([0, 1]), table)
    assert lookup["a1"] == 1 and "a0" not in lookup


def test_rows_added_later_take_precedence_and_count_once(tmp_path):
    table = table_on_disk(tmp_path)
    hashes, rows = sorted_id_hashes([r["id"] for r in RECORDS])
    longer = table.extended([{"id": "a2"}, {"id": "new"}])
    lookup = RowLookup(hashes, rows, table).extended({"a2": 5, "new": 6}, longer)
    assert lookup["a2"] == 5 and lookup["new"] == 6 and lookup["a0"] == 0
    assert len(lookup) == 6 and sorted(lookup) == sorted([*(r["id"] for r in RECORDS), "new"])


def test_columns_are_small_integer_codes_in_first_seen_order():
    codes, values = encode_column(["de", "en", "de", "fr"])
    assert codes.tolist() == [0, 1, 0, 2] and codes.dtype == np.uint16 and values == ["de", "en", "fr"]
    assert codes_of(["fr", "xx", "de"], values) == [2, 0]
    many, _ = encode_column([str(i) for i in range(1 << 16)])
    assert many.dtype == np.uint32


def test_titles_are_searched_by_every_word_casefolded(tmp_path):
    titles = ["Hochwasser in Passau", "Passau: Pegel sinkt", "STRASSE gesperrt", "Wahl in Bayern"]
    blob, offsets = TitleIndex.encode(titles)
    (tmp_path / "titles.txt").write_bytes(blob)
    for index in (TitleIndex.build(titles), TitleIndex.open(tmp_path / "titles.txt", offsets)):
        assert index.rows_with(["passau"]).tolist() == [0, 1]
        assert index.rows_with(["PASSAU", "pegel"]).tolist() == [1]
        assert index.rows_with(["straße"]).tolist() == [2]  # casefolded: ß is ss
        assert index.rows_with(["  "]).tolist() == [] and index.rows_with(["nirgends"]).tolist() == []
        longer = index.extended(["Passau feiert"])
        assert longer.rows_with(["passau"]).tolist() == [0, 1, 4]
