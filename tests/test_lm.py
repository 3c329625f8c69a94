"""fm5 eval's model (harness_ext.lm.PrefixSharingHFLM) scores loglikelihood requests as lm-eval's HFLM does."""

import pytest

from harness_ext import prompts

pytestmark = pytest.mark.slow  # scores with the packaged model


def _requests(tokenizer, rows):
    """Probe-shaped requests: several continuations per prompt (and the prompt's trailing newline alone), plus a
    continuation that shares no prompt, and an empty context."""
    from lm_eval.api.instance import Instance

    reqs = []
    for row in rows:
        ctx = prompts.render_prompt(tokenizer, prompts.build_messages(row, "open"))
        for cont in (row["answer"], rows[0]["answer"], "Yes."):
            reqs.append(Instance("loglikelihood", row, (ctx, cont), idx=0))
        reqs.append(Instance("loglikelihood", row, (ctx.rstrip(), "\n"), idx=0))
    reqs.append(Instance("loglikelihood", rows[0], ("", rows[1]["answer"]), idx=0))
    return reqs


@pytest.mark.parametrize("max_length", [None, 96])  # 96: lm-eval cuts long prompts from the left
def test_same_loglikelihoods_as_hflm(smollm2, shared_rows, max_length):
    from lm_eval.models.huggingface import HFLM

    from harness_ext.lm import PrefixSharingHFLM

    model, tokenizer, _ = smollm2
    rows = sorted(shared_rows, key=lambda r: len(r["passage"]))[100:104]
    kwargs = {"tokenizer": tokenizer, "batch_size": 3, "device": "cpu", "max_length": max_length}
    stock = HFLM(pretrained=model, **kwargs).loglikelihood(_requests(tokenizer, rows))
    ours = PrefixSharingHFLM(pretrained=model, **kwargs).loglikelihood(_requests(tokenizer, rows))
    assert len(ours) == len(stock)
    for (ll_a, greedy_a), (ll_b, greedy_b) in zip(stock, ours):
        assert ll_b == pytest.approx(ll_a, rel=1e-4, abs=1e-4)
        assert greedy_a == greedy_b
    assert stock[3][1] is True and stock[3][0] > -0.01  # "\n" after the assistant header: near-certain
