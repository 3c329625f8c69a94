"""FM 5-0 QA: one greedy generation and one gold-answer loglikelihood per question (like lm-eval's squadv2).

Prompts come from harness_ext.prompts (the builder training uses); metrics from harness_ext.metrics.
"""

import datetime
import logging
from functools import lru_cache, partial

from lm_eval.api.instance import Instance
from lm_eval.api.metrics import mean
from lm_eval.api.task import ConfigurableTask

from harness_ext import data, metrics, models, prompts

log = logging.getLogger(__name__)

HIGHER_IS_BETTER = {
    "perplexity": False,
    "exact_match": True,
    "f1": True,
    "bertscore_precision": True,
    "bertscore_recall": True,
    "bertscore_f1": True,
}
BERTSCORE_PARTS = ("bertscore_precision", "bertscore_recall", "bertscore_f1")


class FM5QATask(ConfigurableTask):
    def __init__(self, config=None):
        # lm-eval hands a `class:` task its whole YAML, the `class` key included, which TaskConfig does not accept
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"})
        meta = self.config.metadata
        backbone = models.bertscore_backbone(meta.get("bertscore_model"), meta.get("bertscore_num_layers"))
        # recorded in the results file's task config, so scores of different backbones are never mixed silently
        meta["bertscore_backbone"] = backbone["name"]
        meta["fm5_data_sha256"] = data.file_sha256(data.resolve_data_path(meta.get("fm5_data")))
        self._backbone = backbone

    @property
    def variant(self) -> str:
        return self.config.dataset_name

    def fewshot_context(
        self,
        doc,
        num_fewshot,
        system_instruction=None,
        apply_chat_template=False,
        fewshot_as_multiturn=False,
        chat_template=None,
        gen_prefix=None,
    ):
        if num_fewshot:
            raise ValueError(f"{self.config.task} is zero-shot; --num_fewshot is not supported")
        messages = prompts.build_messages(doc, self.variant, system_instruction)
        if apply_chat_template and chat_template:
            return chat_template(messages, add_generation_prompt=True)
        return prompts.render_plain(messages)

    def construct_requests(self, doc, ctx, **kwargs):
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        _warn_if_dated(ctx)
        answer = prompts.completion_text(doc)
        requests = [
            Instance("generate_until", doc, (ctx, dict(self.config.generation_kwargs)), idx=0, **kwargs),
            Instance("loglikelihood", doc, (ctx, answer), idx=1, **kwargs),
        ]
        # lm-eval moves the prompt's trailing whitespace (e.g. the "\n" after "assistant") into the continuation;
        # score that whitespace alone too, so that its NLL can be taken out and only the answer is counted.
        stripped = ctx.rstrip()
        if stripped != ctx:
            requests.append(Instance("loglikelihood", doc, (stripped, ctx[len(stripped) :]), idx=2, **kwargs))
        return requests

    def process_results(self, doc, results):
        generation, (ll_with_ws, _) = results[0], results[1]
        ll_ws = results[2][0] if len(results) > 2 else 0.0
        prediction, reference = generation.strip(), prompts.completion_text(doc)
        pair = (prediction, reference)
        return {
            "perplexity": (ll_ws - ll_with_ws, self._answer_tokens(reference)),
            "exact_match": metrics.exact_match(prediction, reference),
            "f1": metrics.f1(prediction, reference),
            **{name: pair for name in BERTSCORE_PARTS},
        }

    def aggregation(self):
        return {
            "perplexity": metrics.corpus_perplexity,
            "exact_match": mean,
            "f1": mean,
            **{name: partial(self._bertscore_mean, i) for i, name in enumerate(BERTSCORE_PARTS)},
        }

    def higher_is_better(self):
        return dict(HIGHER_IS_BETTER)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _answer_tokens(self, answer: str) -> int:
        """Token count of the answer alone, with the tokenizer of the evaluated model (from --model_args, which
        lm-eval merges into the task metadata, or --metadata fm5_tokenizer)."""
        meta = self.config.metadata
        source = meta.get("fm5_tokenizer") or meta.get("tokenizer")
        if not (source or meta.get("pretrained")):
            raise ValueError(
                f"{self.config.task}: perplexity needs the model's tokenizer; pass pretrained= in --model_args "
                "or --metadata '{\"fm5_tokenizer\": PATH}'"
            )
        tok = models.load_tokenizer(meta.get("pretrained"), meta.get("gguf_file"), source)
        return len(tok(answer, add_special_tokens=False)["input_ids"])

    def _bertscore_mean(self, part: int, items) -> float:
        predictions, references = zip(*items)
        scores = _bertscore_cached(tuple(predictions), tuple(references), self._backbone["model"],
                                   self._backbone["num_layers"])
        return metrics.mean(scores[part])


# the three BERTScore parts are aggregated separately; score the pairs once
_bertscore_cached = lru_cache(maxsize=4)(metrics.bertscore)


@lru_cache(maxsize=1)
def _warn_once(today: str) -> None:
    log.warning(
        "the chat template wrote today's date (%s) into the prompt, so scores can change from day to day; pass "
        "--model_args '{\"pretrained\": ..., \"chat_template_args\": {\"date_string\": \"%s\"}}' to pin it",
        today,
        prompts.PINNED_DATE,
    )


def _warn_if_dated(ctx: str) -> None:
    today = datetime.date.today().strftime("%d %b %Y")
    if today in ctx:
        _warn_once(today)
