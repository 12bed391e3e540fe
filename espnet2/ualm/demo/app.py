"""The web demo's page: a Gradio ``Blocks`` app over ``handlers.py``.

Tabs: text-to-audio, understanding, chat, reasoning (a placeholder until
UALM-Reason lands) and the model (card with its RESULTS, decoding settings).
Every model event is queued and batched by Gradio itself (``batch=True``,
``max_batch_size``): requests from several tabs that arrive together reach a
handler as one list, and the handler sends them to the model in as few calls
as their settings allow. All model events share one concurrency slot
(``concurrency_id``), so the model runs one batch at a time.
"""

from typing import Any, List

from espnet2.ualm.demo.handlers import (
    CHAT_PLANS,
    MAX_CANDIDATES,
    UNDERSTANDING_TASKS,
    DemoModel,
    chat,
    model_card,
    settings_text,
    text_to_audio,
    understand,
)

MODEL_SLOT = "ualm"  # the concurrency id of every event that runs the model
REASONING_NOTE = """\
### Reasoning: not yet

Enrichment, dialogue (the model's questions appear in the chat and you answer)
and self-reflection with every step shown (plan, first audio, what the model
heard, critique, revised audio) come with the UALM-Reason issue; this tab
shows them once it has landed.
"""
BEST_OF_N_NOTE = (
    "Each candidate uses the next seed. They are shown in seed order, not "
    "ranked: ranking comes with best-of-N."
)


def import_gradio():
    """Gradio, or a clear message telling how to install it (an optional
    extra: the core install does not need it)."""
    try:
        import gradio
    except ImportError as e:
        raise SystemExit(
            "the UALM web demo needs gradio, an optional extra: "
            "`make -C tools demo` (into tools/venv) or `pip install '.[demo]'` "
            f"({e})"
        ) from None
    return gradio


def chat_messages(display) -> List[Any]:
    """A ``ChatState.display`` as Gradio chatbot messages (audio as players;
    an empty text segment, which a small model may reply, said as such)."""
    gr = import_gradio()
    return [
        {
            "role": role,
            "content": (value or "*(empty text segment)*")
            if kind == "text"
            else gr.Audio(value, type="filepath"),
        }
        for role, kind, value in display
    ]


def build_demo(model: DemoModel, max_batch_size: int = 0):
    """The Blocks app for ``model``; ``max_batch_size``: most requests per
    batch (0: the model's ``batch_size`` decode setting)."""
    gr = import_gradio()
    batch = max(1, int(max_batch_size or model.ualm.settings.batch_size))
    # Gradio's own queue batches the model events: requests from every tab
    # that wait together reach a handler as one list (batch=True); one
    # shared slot runs one batch at a time on the one model.
    queued = dict(
        batch=True,
        max_batch_size=batch,
        concurrency_limit=1,
        concurrency_id=MODEL_SLOT,
    )
    settings = model.ualm.settings
    enhancer = {"packed": "the Enhancement VAE", "resample": "resampling"}

    with gr.Blocks(title="UALM demo") as demo:
        gr.Markdown(
            "# UALM: one model that understands, generates and talks about audio"
        )
        with gr.Tab("Text to audio"):
            with gr.Row():
                with gr.Column():
                    caption = gr.Textbox(
                        label="Caption",
                        placeholder="two high-pitched beeps",
                        elem_id="t2a_caption",
                    )
                    cfg = gr.Slider(
                        1.0,
                        10.0,
                        value=settings.cfg_scale or 1.0,
                        step=0.5,
                        label="CFG scale (1: no guidance)",
                    )
                    seed = gr.Number(value=settings.seed, precision=0, label="Seed")
                    n = gr.Slider(
                        1,
                        MAX_CANDIDATES,
                        value=1,
                        step=1,
                        label="Candidates",
                        info=BEST_OF_N_NOTE,
                    )
                    enhance = gr.Checkbox(
                        value=False,
                        label=f"Enhancer: 48 kHz stereo by "
                        f"{enhancer[model.enhancer_name]} (off: the codec's "
                        f"{model.ualm.codec.sample_rate} Hz mono)",
                    )
                    go = gr.Button("Generate", variant="primary", elem_id="t2a_go")
                    t2a_error = gr.Textbox(label="Errors", elem_id="t2a_error")
                    files = gr.File(
                        label="Downloads (wav and codes .npy)", file_count="multiple"
                    )
                with gr.Column():
                    players, pictures = [], []
                    for j in range(MAX_CANDIDATES):
                        players.append(
                            gr.Audio(
                                label=f"Candidate {j + 1}",
                                type="filepath",
                                interactive=False,
                                visible=j == 0,
                                elem_id=f"t2a_audio_{j}",
                                # the browser's own player (a plain <audio>);
                                # the spectrogram beside it shows the signal
                                waveform_options=gr.WaveformOptions(
                                    show_recording_waveform=False
                                ),
                            )
                        )
                        pictures.append(
                            gr.Image(
                                label=f"Spectrogram {j + 1}",
                                type="filepath",
                                interactive=False,
                                visible=j == 0,
                                elem_id=f"t2a_spec_{j}",
                            )
                        )

            def generate(captions, cfgs, seeds, ns, enhances):
                results = text_to_audio(model, captions, cfgs, seeds, ns, enhances)
                audio = [[] for _ in range(MAX_CANDIDATES)]
                spec = [[] for _ in range(MAX_CANDIDATES)]
                for r in results:
                    for j in range(MAX_CANDIDATES):
                        c = r.candidates[j] if j < len(r.candidates) else None
                        audio[j].append(c.wav if c else None)
                        spec[j].append(c.spectrogram if c else None)
                downloads = [
                    [f for c in r.candidates for f in (c.wav, c.codes)] or None
                    for r in results
                ]
                errors = [r.error or "" for r in results]
                return [errors, downloads, *audio, *spec]

            go.click(
                generate,
                [caption, cfg, seed, n, enhance],
                [t2a_error, files, *players, *pictures],
                **queued,
            )
            # Not batched, no model: shows as many slots as candidates asked.
            n.change(
                lambda k: [gr.update(visible=j < k) for j in range(MAX_CANDIDATES)] * 2,
                n,
                [*players, *pictures],
                queue=False,
            )

        with gr.Tab("Understanding"):
            with gr.Row():
                with gr.Column():
                    clip = gr.Audio(
                        sources=["upload", "microphone"],
                        type="filepath",
                        label="Audio",
                        elem_id="und_audio",
                    )
                    task = gr.Radio(
                        list(UNDERSTANDING_TASKS), value="caption", label="Task"
                    )
                    question = gr.Textbox(label="Question (for answer)")
                    ask = gr.Button("Run", variant="primary", elem_id="und_go")
                with gr.Column():
                    answer = gr.Textbox(label="Model output", elem_id="und_text")
                    und_error = gr.Textbox(label="Errors", elem_id="und_error")

            def run_understanding(audios, tasks, questions):
                results = understand(model, audios, tasks, questions)
                return [
                    [r.text or "" for r in results],
                    [r.error or "" for r in results],
                ]

            ask.click(
                run_understanding,
                [clip, task, question],
                [answer, und_error],
                **queued,
            )

        with gr.Tab("Chat"):
            state = gr.State(None)
            chatbot = gr.Chatbot(label="Conversation", elem_id="chat_log")
            plan = gr.Radio(
                list(CHAT_PLANS), value="the model chooses", label="Reply as"
            )
            box = gr.MultimodalTextbox(
                file_types=["audio"],
                sources=["upload", "microphone"],
                placeholder="Type a message, attach or record audio",
                elem_id="chat_box",
            )
            chat_error = gr.Textbox(label="Errors", elem_id="chat_error")

            def run_chat(messages, states, plans):
                results = chat(model, messages, states, plans)
                return [
                    [r.state for r in results],
                    [chat_messages(r.state.display) for r in results],
                    # the box keeps a message that failed, to edit and resend
                    [None if r.error is None else m for r, m in zip(results, messages)],
                    [r.error or "" for r in results],
                ]

            box.submit(
                run_chat,
                [box, state, plan],
                [state, chatbot, box, chat_error],
                **queued,
            )

        with gr.Tab("Reasoning"):
            gr.Markdown(REASONING_NOTE)

        with gr.Tab("Model"):
            gr.Markdown("## Decoding settings in force")
            gr.Code(settings_text(model), language="yaml", interactive=False)
            gr.Markdown("## Model card")
            gr.Markdown(model_card(model), elem_id="model_card")
    return demo
