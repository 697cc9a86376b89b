"""Byte-level BPE tokenizer trained on a small slice of the shared corpus."""

import pytest

from models.mmfree.config import preset
from models.text.corpus import corpus_files, data_root
from models.text.tokenizer import (BOS_ID, EOS_ID, MIN_VOCAB, PAD_ID, UNK_ID, check_matches_config, decode, encode,
                              load_tokenizer, save_tokenizer, train_tokenizer)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(600, corpus_files()[:1], max_bytes=150_000)


def test_corpus_layout():
    files = corpus_files()
    assert len(files) == 64
    assert files[0].parent.name == "wikipedia_enwiki2015" and files[-1].parent.name == "gutenberg"


def test_special_token_ids(tok):
    assert [tok.token_to_id(t) for t in ("<unk>", "<s>", "</s>", "<pad>")] == [UNK_ID, BOS_ID, EOS_ID, PAD_ID] == [0, 1, 2, 3]
    assert tok.get_vocab_size() == 600


def test_round_trip_on_real_and_unusual_text(tok):
    wt = (data_root() / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")[:20_000]
    for text in (wt, "  leading spaces\n\n\ttabs and ünïcödé — 日本語 🙂 \r\n", "", "x"):
        ids = encode(tok, text)
        assert decode(tok, ids) == text
        assert UNK_ID not in ids
    assert len(encode(tok, wt)) < len(wt.encode("utf-8"))  # merges were learned


def test_save_and_load_beside_a_checkpoint(tok, tmp_path):
    p = save_tokenizer(tok, tmp_path)
    assert p.name == "tokenizer.json"
    again = load_tokenizer(tmp_path)
    assert again.to_str() == tok.to_str()
    assert encode(again, "The quick brown fox.") == encode(tok, "The quick brown fox.")
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json"):
        load_tokenizer(tmp_path / "missing")


def test_tokenizer_must_fit_the_config(tok):
    check_matches_config(tok, preset("tiny", vocab_size=600))
    with pytest.raises(ValueError, match=r"^tokenizer has 600 ids but config\.vocab_size is 512$"):
        check_matches_config(tok, preset("tiny"))
    with pytest.raises(ValueError, match=r"^config\.eos_token_id=5 but the tokenizer's '</s>' is id 2$"):
        check_matches_config(tok, preset("tiny", vocab_size=600, eos_token_id=5))


def test_vocab_too_small():
    with pytest.raises(ValueError, match=rf"^vocab_size must be at least {MIN_VOCAB}"):
        train_tokenizer(100, corpus_files()[:1], max_bytes=1000)
