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


def test_requests_that_wait_together_run_as_one_batch(demo_model, monkeypatch):
    """Three clients at once: the first holds the model slot, the two that
    queued meanwhile reach the handler as one batch."""
    import socket
    import threading
    import time

    from gradio_client import Client

    import espnet2.ualm.demo.app as app

    batches, started = [], threading.Event()
    real = app.text_to_audio

    def slow_first(model, captions, *settings):
        batches.append(list(captions))
        started.set()
        if len(batches) == 1:
            time.sleep(2.0)  # the others arrive while this one runs
        return real(model, captions, *settings)

    monkeypatch.setattr(app, "text_to_audio", slow_first)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(demo_model, max_batch_size=4).queue()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        allowed_paths=[demo_model.workdir],
        quiet=True,
    )
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        args = (3.0, 0, 1, False)
        first = client.submit("one beep", *args, api_name="/generate")
        assert started.wait(30)
        rest = [client.submit(c, *args, api_name="/generate") for c in ("hum", "")]
        errors = [job.result(timeout=60)[0] for job in (first, *rest)]
    finally:
        demo.close()
    # (the client sends from threads: the two may arrive in either order)
    assert [sorted(b) for b in batches] == [["one beep"], ["", "hum"]]
    assert errors[:2] == ["", ""] and "empty caption" in errors[2]
