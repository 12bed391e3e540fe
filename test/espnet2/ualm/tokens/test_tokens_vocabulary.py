"""Vocabulary layout: fixed order, round trips, persistence, no key-order effect."""

import dataclasses
import json
import os
import types

import pytest
import torch
import yaml

from espnet2.ualm.tokens.vocabulary import (
    NUM_RESERVED,
    SPECIAL_TOKENS,
    AudioLayout,
    TokenInfo,
    UALMVocabulary,
    as_vocabulary,
)


def test_layout_specials_text_then_audio(vocab):
    assert vocab.pad_id == 0 and SPECIAL_TOKENS[0] == "<pad>"
    assert [vocab.special_id(t) for t in SPECIAL_TOKENS] == list(
        range(len(SPECIAL_TOKENS))
    )
    assert vocab.text_offset == NUM_RESERVED == 256
    assert vocab.audio_offset == 256 + 128
    assert vocab.size == 256 + 128 + 3 * (5 + 1)
    assert vocab.text_ids([0, 127]) == [256, 383]
    assert vocab.audio_id(0, 0) == vocab.audio_offset
    assert vocab.audio_pad_ids() == (389, 395, 401)  # one pad after each codebook
    assert vocab.codebook_range(1) == (390, 396)
    assert vocab.role_id("assistant") == vocab.special_id("<assistant>")
    assert vocab.modality_id("audio_input") == vocab.special_id("<audio_input>")


def test_released_geometry_has_8200_audio_ids():
    vocab = UALMVocabulary(text_vocab_size=151665, n_codebooks=8, codebook_size=1024)
    assert vocab.audio_size == 8200
    assert vocab.size == 256 + 151665 + 8200


def test_every_id_round_trips_through_kind_codebook_code(vocab):
    for token_id in range(vocab.size):
        info = vocab.info(token_id)
        assert vocab.to_id(*info) == token_id
    assert vocab.info(0) == TokenInfo("special", -1, 0)
    assert vocab.info(vocab.text_offset + 7) == TokenInfo("text", -1, 7)
    assert vocab.info(vocab.audio_pad_id(2)) == TokenInfo("audio", 2, 5)
    assert vocab.token_name(vocab.audio_id(1, 3)) == "<audio_1_3>"
    assert vocab.token_name(200) == "<reserved_200>"
    with pytest.raises(ValueError):
        vocab.info(vocab.size)


def test_codes_to_ids_and_back(vocab):
    codes = torch.randint(0, 5, (7, 3))
    ids = vocab.codes_to_ids(codes)
    assert bool(vocab.is_audio(ids).all())
    for k in range(3):
        lo, hi = vocab.codebook_range(k)
        assert bool(((ids[:, k] >= lo) & (ids[:, k] < hi - 1)).all())
    assert torch.equal(vocab.ids_to_codes(ids), codes)
    with pytest.raises(ValueError, match="outside"):
        vocab.codes_to_ids(torch.full((2, 3), 5))
    with pytest.raises(ValueError, match="codebooks"):
        vocab.codes_to_ids(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="own codebook"):
        vocab.ids_to_codes(ids.flip(-1))


def test_json_round_trip_and_fingerprint(vocab, tmp_path):
    path = vocab.save(str(tmp_path))
    assert path.endswith("vocabulary.json")
    loaded = UALMVocabulary.load(str(tmp_path))
    assert loaded == vocab and loaded.fingerprint() == vocab.fingerprint()
    assert json.load(open(path))["special_tokens"] == list(SPECIAL_TOKENS)
    assert UALMVocabulary.from_dict(vocab.to_dict()) == vocab
    assert as_vocabulary(path) == as_vocabulary(vocab.to_dict()) == vocab


def test_yaml_key_order_cannot_change_the_layout():
    a = yaml.safe_load(
        "vocabulary:\n  n_codebooks: 3\n  codebook_size: 5\n  text_vocab_size: 128\n"
    )
    b = yaml.safe_load(
        "vocabulary:\n  text_vocab_size: 128\n  codebook_size: 5\n  n_codebooks: 3\n"
    )
    assert list(a["vocabulary"]) != list(b["vocabulary"])
    va = UALMVocabulary.from_dict(a["vocabulary"])
    vb = UALMVocabulary.from_dict(b["vocabulary"])
    assert va == vb and va.fingerprint() == vb.fingerprint()
    # token order may only come from an explicit list, never from a mapping
    conf = yaml.safe_load(
        "text_vocab_size: 128\nn_codebooks: 3\ncodebook_size: 5\n"
        "special_tokens: {<pad>: 0, <bos>: 1}\n"
    )
    with pytest.raises(TypeError, match="ordered list"):
        UALMVocabulary.from_dict(conf)


def test_invalid_layouts_are_refused(vocab):
    with pytest.raises(ValueError, match="unknown vocabulary keys"):
        UALMVocabulary.from_dict({**vocab.to_dict(), "codebooks": 8})
    with pytest.raises(ValueError, match="start with <pad>"):
        UALMVocabulary(
            128, 3, 5, special_tokens=("<bos>", "<pad>") + SPECIAL_TOKENS[2:]
        )
    with pytest.raises(ValueError, match="duplicates"):
        UALMVocabulary(128, 3, 5, special_tokens=SPECIAL_TOKENS + ("<bos>",))
    with pytest.raises(ValueError, match="lacks"):
        UALMVocabulary(128, 3, 5, special_tokens=SPECIAL_TOKENS[:-1])
    with pytest.raises(ValueError, match="positive"):
        UALMVocabulary(128, 0, 5)


def test_check_same_names_the_difference(vocab):
    other = UALMVocabulary(128, 3, 6)
    vocab.check_same(UALMVocabulary(128, 3, 5))
    with pytest.raises(ValueError, match="codebook_size: 5 != 6"):
        vocab.check_same(other)


def test_for_codec_reads_the_codec_geometry():
    codec = types.SimpleNamespace(n_codebooks=4, codebook_size=17)
    vocab = UALMVocabulary.for_codec(100, codec)
    assert (vocab.n_codebooks, vocab.codebook_size, vocab.text_vocab_size) == (
        4,
        17,
        100,
    )
    # extra special tokens go at the end, inside the reserved range
    grown = UALMVocabulary(100, 4, 17, special_tokens=SPECIAL_TOKENS + ("<music>",))
    assert grown.special_id("<music>") == len(SPECIAL_TOKENS)
    assert grown.text_offset == vocab.text_offset


def test_a_failed_save_leaves_the_saved_layout_whole(tmp_path, monkeypatch):
    """Another rank may read vocabulary.json while this one writes it: the
    file is replaced whole, never left half written."""
    old = UALMVocabulary(text_vocab_size=100, n_codebooks=2, codebook_size=8)
    path = old.save(str(tmp_path))
    new = UALMVocabulary(text_vocab_size=200, n_codebooks=2, codebook_size=8)

    def half_then_fail(obj, f, **kwargs):
        f.write('{"text_vocab_size": 2')
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        new.save(path)
    monkeypatch.undo()
    assert UALMVocabulary.load(path) == old
    assert os.listdir(tmp_path) == ["vocabulary.json"]
    new.save(path)
    assert UALMVocabulary.load(path) == new


# ----- AudioLayout ------------------------------------------------------------

ESPNET_LAYOUT = AudioLayout(
    delays=(0, 0, 0), closing="after", cfg_null="<cfg_null>", cfg_extent="prompt"
)


def _espnet_vocab(vocab, layout=ESPNET_LAYOUT):
    return dataclasses.replace(
        vocab, special_tokens=SPECIAL_TOKENS + ("<cfg_null>",), audio_layout=layout
    )


def test_the_default_layout_is_not_written(vocab, tmp_path):
    """A vocabulary saved before ``audio_layout`` existed loads as the
    default one, with the same fingerprint (old packed models, old
    checkpoints' ``vocabulary_fingerprint``)."""
    conf = vocab.to_dict()
    assert "audio_layout" not in conf
    assert UALMVocabulary.from_dict(conf) == vocab
    assert vocab.audio_delays == (0, 1, 2) and vocab.cfg_null_id == vocab.pad_id
    # the fingerprint the code before the field gave this vocabulary
    assert vocab.fingerprint() == (
        "3df0583038e36b64ef1cc2c1a3b9f43cfd6f3a37567db459b948a6c034c9f456"
    )


def test_a_layout_round_trips_and_changes_the_fingerprint(vocab, tmp_path):
    other = _espnet_vocab(vocab)
    assert other.to_dict()["audio_layout"] == {
        "delays": [0, 0, 0],
        "closing": "after",
        "cfg_null": "<cfg_null>",
        "cfg_extent": "prompt",
    }
    path = other.save(str(tmp_path))
    again = UALMVocabulary.load(path)
    assert again == other and again.audio_layout == ESPNET_LAYOUT
    assert again.fingerprint() != _espnet_vocab(vocab, AudioLayout()).fingerprint()
    assert again.cfg_null_id == len(SPECIAL_TOKENS)
    with pytest.raises(ValueError, match="audio_layout: .*closing"):
        vocab.check_same(other)
    # MusicGen's delays written out are the default: one canonical form
    explicit = dataclasses.replace(vocab, audio_layout=AudioLayout(delays=(0, 1, 2)))
    assert explicit == vocab and "audio_layout" not in explicit.to_dict()


@pytest.mark.parametrize(
    "layout,match",
    [
        (dict(delays=(0, 1)), "one per codebook"),
        (dict(delays=(1, 0, 0)), "stream 0 must have delay 0"),
        (dict(delays=(0, -1, 0)), "negative"),
        (dict(closing="later"), "closing must be one of"),
        (dict(cfg_extent="all"), "cfg_extent must be one of"),
        (dict(cfg_null="<cfg_null>"), "not a special token"),
        (dict(unknown=1), "unknown audio_layout keys"),
    ],
)
def test_bad_layouts_are_refused(vocab, layout, match):
    conf = {**vocab.to_dict(), "audio_layout": layout}
    with pytest.raises((ValueError, TypeError), match=match):
        UALMVocabulary.from_dict(conf)
