"""Cross-modal: runs that embed two modalities of the same samples (an image and its caption) into one space.
How far apart the modalities sit and whether each sample finds its partner, over training; what a
conditional generator draws; both modalities in one projection at a chosen snapshot."""

import streamlit as st

from dashboard import crossmodal_view as view
from dashboard import data, picker

st.title("Cross-modal")
names = picker.active_runs()
if not names:
    picker.wait_for_first_run()
paired = view.paired_runs(names)
if not paired:
    st.info(
        "None of these runs stores a second modality: pass `paired_embeddings=` (N×d, row i the partner "
        'of embeddings row i) to `log_snapshot`, as the cross-modal trainer (`model.kind = "cvae"`) does.'
    )
    st.stop()

st.header("Over training")
view.numbers_over_training(paired)
view.generation_metrics(list(paired))

st.header("At one snapshot")
left, right = st.columns([1, 3])
focus = left.selectbox("Run", list(paired), key="crossmodal_run", bind="query-params", persist_state="session")
steps = list(data.committed_steps(focus))
step = right.select_slider(
    "Snapshot step", options=steps, value=steps[-1], key="crossmodal_step", bind="query-params", persist_state="session"
)
view.snapshot_numbers(focus, step)
view.joint_projection(focus, step)
st.subheader("Generated samples")
view.sample_grid(focus)
