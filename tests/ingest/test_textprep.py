from types import SimpleNamespace

from recommender.ingest.textprep import (
    TextView,
    detect_language,
    make_teaser,
    prepare,
    split_sentences,
)


def article(title="Titel", teaser="", body="Erster Satz. Zweiter Satz."):
    return SimpleNamespace(title=title, teaser=teaser, body=body)


def test_prepare_puts_title_teaser_and_body_in_order():
    text = prepare(article("Wahl in Hessen", "Die CDU gewinnt.", "Am Sonntag wurde gewählt."), TextView())
    assert text == "Wahl in Hessen. Die CDU gewinnt. Am Sonntag wurde gewählt."


def test_title_weight_repeats_the_title():
    text = prepare(article("Flut"), TextView(title_repeat=2))
    assert text.startswith("Flut. Flut. ")


def test_head_and_tail_drop_the_middle_of_long_bodies():
    body = " ".join(f"wort{i}" for i in range(1000))
    text = prepare(article(body=body), TextView(head_chars=100, tail_chars=60))
    assert "wort0 " in text and "wort999" in text and "wort500" not in text
    assert " … " in text
    assert len(text) < 200


def test_short_bodies_are_kept_whole_and_whitespace_is_normalised():
    text = prepare(article(body="Ein\n\nText   mit\tLücken."), TextView(head_chars=10, tail_chars=10))
    assert text.endswith("Ein Text mit Lücken.")


def test_teaser_is_skipped_when_the_body_starts_with_it():
    text = prepare(article(teaser="Erster Satz.", body="Erster Satz. Zweiter Satz."), TextView())
    assert text.count("Erster Satz.") == 1


def test_make_teaser_takes_whole_first_sentences():
    body = "Der Rhein steigt weiter. In Köln wurden Schutzwände aufgebaut. " + "Noch mehr Text. " * 30
    assert make_teaser(body, max_chars=70) == "Der Rhein steigt weiter. In Köln wurden Schutzwände aufgebaut."


def test_make_teaser_cuts_one_long_sentence_with_an_ellipsis():
    teaser = make_teaser("wort " * 200, max_chars=50)
    assert teaser.endswith("…") and len(teaser) <= 50


def test_split_sentences():
    assert split_sentences("Eins. Zwei! Drei? vier") == ["Eins.", "Zwei!", "Drei? vier"]


def test_detect_language_german_and_english():
    assert detect_language("Die Bundesregierung hat am Mittwoch einen neuen Haushalt beschlossen.") == "de"
    assert detect_language("The government approved a new budget on Wednesday after long talks.") == "en"
    assert detect_language("   ") == "und"


def test_name_tokens_keep_names_and_numbers_but_not_sentence_starts():
    from recommender.ingest.textprep import name_tokens

    tokens = name_tokens("Die Polizei in Lindau-Ost sucht Zeugen. Am 3. März traf Scholz den Präsidenten Macron.")
    assert "lindau-ost" in tokens and "scholz" in tokens and "macron" in tokens and "3" in tokens
    assert "die" not in tokens and "am" not in tokens  # capitalised only because they start a sentence
    assert "sucht" not in tokens


def test_prepare_chunks_reads_consecutive_pieces_after_the_title():
    from recommender.ingest.textprep import prepare_chunks

    body = " ".join(f"w{i}" for i in range(300))
    first, second = prepare_chunks(article("Titel", body=body), TextView(head_chars=200, chunks=2))
    assert first == prepare(article("Titel", body=body), TextView(head_chars=200))
    assert second.startswith("Titel. ") and "w0 " not in second
    last_of_first = first.rstrip(".").split()[-1]
    assert second.split()[1] == f"w{int(last_of_first[1:]) + 1}"  # the second piece starts where the first ended
    assert len(prepare_chunks(article(body="kurz"), TextView(head_chars=200, chunks=2))) == 1
    assert len(prepare_chunks(article(body=body), TextView(head_chars=200, chunks=1))) == 1
