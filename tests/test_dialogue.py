"""The dialogue core, driven directly with Turn objects (fake NLU for routing)."""

from actions.context import MAIN_MENU
from actions.dialogue import Dialogue
from actions.types import Contact, Turn
from bot.app import Assistant
from db.engine import make_sessionmaker
from nlu.client import Parse


def say(assistant, text=None, user="7", **kw):
    return assistant.handle(Turn("console", user, text=text, **kw))


def payloads(replies):
    return [b.payload for r in replies for b in r.buttons]


MENU = [f"/{intent}" for intent in MAIN_MENU]


def test_start_shows_welcome_privacy_and_menu(assistant, texts):
    replies = say(assistant, "/start")
    assert replies[0].text == texts("welcome")
    assert "PIN, OTP" in replies[1].text and "gratis" in replies[1].text
    assert payloads(replies) == MENU


def test_intent_routes_to_its_handler(assistant, texts):
    assert say(assistant, "halo kak")[0].text == texts("greet")
    assert say(assistant, "makasih ya")[0].text == texts("thanks")
    assert say(assistant, "dadah")[0].text == texts("goodbye")
    assert say(assistant, "sy bingung")[0].text == texts("help")
    assert say(assistant, "cara bikin sim")[0].text == texts("out_of_scope")


def test_faq_retrieval_intent_uses_the_selected_answer(assistant, texts):
    assert say(assistant, "prokus apa sih")[0].text == texts("faq/what_is_prokus")


def test_low_confidence_and_unknown_get_fallback_with_menu(assistant, texts):
    replies = say(assistant, "hmm")
    assert replies[0].text == texts("fallback")
    assert payloads(replies) == MENU
    # A second miss in a row also offers a person.
    replies = say(assistant, "qwerty asdf")
    assert replies[0].text == texts("fallback_again")
    assert payloads(replies) == MENU + ["/human_handoff"]
    # Understanding something resets the count.
    say(assistant, "halo")
    assert say(assistant, "qwerty")[0].text == texts("fallback")


def test_two_close_intents_are_offered_as_buttons(assistant, fake_nlu, texts):
    fake_nlu.rules["antara"] = Parse(
        "nlu_fallback", 0.4,
        ranking=(("nlu_fallback", 0.4), ("register_prokus", 0.38), ("out_of_scope", 0.3),
                 ("faq", 0.29), ("greet", 0.02)),
        response_selector={"faq": {"response": {"intent_response_key": "faq/cost"}}},
    )
    replies = say(assistant, "antara dua")
    assert replies[0].text == texts("clarify")
    assert payloads(replies) == ["/register_prokus", "/faq/cost", "/other"]
    assert [b.label for b in replies[0].buttons] == [
        texts("label/register_prokus"), texts("label/faq/cost"), texts("label/other")]
    # Pressing "Lainnya" apologises and shows the menu; pressing an option answers it.
    assert say(assistant, payload="/other")[0].text == texts("clarify_other")
    assert say(assistant, payload="/faq/cost")[0].text == texts("faq/cost")


def test_faq_answers_offer_a_next_step(assistant, texts):
    replies = say(assistant, payload="/faq/requirements")
    assert payloads(replies)[:2] == ["/check_eligibility", "/register_prokus"]


def test_nlu_down_gets_apology_and_menu_then_recovers(assistant, fake_nlu, texts):
    fake_nlu.down = True
    replies = say(assistant, "halo")
    assert replies[0].text == texts("nlu_down")
    assert payloads(replies) == MENU
    fake_nlu.down = False
    assert say(assistant, "halo")[0].text == texts("greet")


def test_buttons_work_without_the_nlu(assistant, fake_nlu, texts):
    fake_nlu.down = True
    assert say(assistant, payload="/faq/requirements")[0].text == texts("faq/requirements")
    # Typing a button's label (what a Telegram reply keyboard sends) picks it too.
    assert say(assistant, "bidang USAHA apa saja?")[0].text == texts("faq/business_sectors")
    assert say(assistant, "menu")[0].text == texts("menu")
    assert fake_nlu.seen == []


def test_commands(assistant, texts):
    assert say(assistant, "/bantuan")[0].text == texts("help")
    assert say(assistant, "/menu")[0].text == texts("menu")
    assert say(assistant, "/batal")[0].text == texts("cancel_idle")
    assert say(assistant, "/start@ProkusBot")[0].text == texts("welcome")
    assert say(assistant, "/hapus_semua")[0].text == texts("unknown_command")
    assert say(assistant, payload="/drop_table")[0].text == texts("unknown_command")


def test_bad_input_gets_a_polite_reply_and_never_reaches_the_nlu(assistant, fake_nlu, texts):
    assert say(assistant, "")[0].text == texts("empty_message")
    assert say(assistant, " \x00\x1b ")[0].text == texts("empty_message")
    assert say(assistant, "😀🙏🔥")[0].text == texts("no_words")
    long_reply = say(assistant, "a" * 5000)[0].text
    assert long_reply == texts("too_long", limit=4096)
    assert fake_nlu.seen == []
    # Control characters are stripped before the NLU sees the text.
    say(assistant, "ha\x00lo\x07")
    assert fake_nlu.seen == ["halo"]


def test_contact_outside_a_form_is_not_stored(assistant, texts, sqlite_engine):
    replies = say(assistant, contact=Contact("+6281234567890", user_id="7"))
    assert replies[0].text == texts("contact_not_needed")
    with sqlite_engine.connect() as conn:
        dump = "\n".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM conversations"))
    assert "81234567890" not in dump


def test_state_survives_a_restart(sqlite_engine, fake_nlu, texts):
    first = Assistant(Dialogue(fake_nlu, texts), make_sessionmaker(sqlite_engine))
    first.handle(Turn("console", "5", text="halo"))
    # A new process: new Dialogue and sessionmaker over the same database.
    second = Assistant(Dialogue(fake_nlu, texts), make_sessionmaker(sqlite_engine))
    fake_nlu.down = True  # the label must be resolved from stored state, not the NLU
    assert second.handle(Turn("console", "5", text="Bantuan"))[0].text == texts("help")


def test_users_are_kept_apart(assistant, fake_nlu, texts):
    say(assistant, "halo", user="1")  # offers the menu to user 1 only
    fake_nlu.down = True
    assert say(assistant, "Bantuan", user="2")[0].text == texts("nlu_down")


def test_a_crash_in_a_handler_gives_an_apology_not_a_traceback(assistant, texts):
    def broken(ctx):
        raise RuntimeError("boom")

    assistant.dialogue.handlers["greet"] = broken
    assert say(assistant, "halo")[0].text == texts("internal_error")
    # The next message works again.
    assert say(assistant, "makasih")[0].text == texts("thanks")


def test_every_text_key_used_by_the_menu_exists(texts):
    for intent in MAIN_MENU:
        assert f"label/{intent}" in texts


def test_batal_and_menu_work_even_when_the_nlu_is_down(assistant, fake_nlu, texts):
    fake_nlu.down = True
    assert say(assistant, "Batal!")[0].text == texts("cancel_idle")
    assert say(assistant, "menu")[0].text == texts("menu")
    assert fake_nlu.seen == []


def test_a_sticker_outside_a_form_gets_text_only_and_the_menu(assistant, texts):
    replies = say(assistant, unsupported="sticker")
    assert replies[0].text == texts("text_only") and payloads(replies) == MENU


def test_every_form_can_be_stopped_and_explained_at_every_step(fake_nlu, texts):
    """"batal" and the two-failure help use texts named after the form and step: each must
    exist, or a user stopping halfway would get an error instead."""
    from types import SimpleNamespace

    dialogue = Dialogue(fake_nlu, texts)
    for name, form in dialogue.forms.items():
        assert f"{name}_cancelled" in texts, name
        for step in form.steps:
            ctx = SimpleNamespace(state={"form": {"name": name, "step": step}})
            assert form.example(ctx) in texts, (name, step)
