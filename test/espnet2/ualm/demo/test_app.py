"""The Gradio page: every model event is queued, batched and shares one
concurrency slot; chat replies become chatbot messages with players."""

import pytest

gr = pytest.importorskip("gradio", reason="the demo extra: `make -C tools demo`")

from espnet2.ualm.demo.app import MODEL_SLOT, build_demo, chat_messages  # noqa: E402


def test_model_events_are_batched_in_one_slot(demo_model):
    demo = build_demo(demo_model, max_batch_size=3)
    model_events = [fn for fn in demo.fns.values() if fn.batch]
    names = sorted(fn.name for fn in model_events)
    assert names == ["generate", "run_chat", "run_understanding"]
    for fn in model_events:
        assert fn.max_batch_size == 3 and fn.concurrency_id == MODEL_SLOT
        assert fn.concurrency_limit == 1 and fn.queue
    default = build_demo(demo_model)
    assert {fn.max_batch_size for fn in default.fns.values() if fn.batch} == {
        demo_model.ualm.settings.batch_size
    }


def test_chat_display_becomes_chatbot_messages(tmp_path, clip):
    display = [
        ("user", "text", "hi"),
        ("assistant", "text", ""),
        ("assistant", "audio", clip),
    ]
    messages = chat_messages(display)
    assert messages[0] == {"role": "user", "content": "hi"}
    assert messages[1]["content"] == "*(empty text segment)*"
    assert messages[2]["role"] == "assistant"
    assert isinstance(messages[2]["content"], gr.Audio)
