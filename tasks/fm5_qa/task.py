"""FM 5-0 tasks: prompts from harness_ext.prompts (the builder training uses), metrics from harness_ext.metrics.

- FM5QATask (fm5_qa_open / _closed): one greedy generation and one gold-answer loglikelihood per question (like
  lm-eval's squadv2).
- FM5MCTask (fm5_qa_mc_open / _closed): the multiple-choice knowledge probe; loglikelihood requests only.
- FM5DocTask (fm5_doc_mc): the passage-continuation probe; loglikelihood requests only, plain text.

YAML alone cannot say either: both render the shared chat prompt with its system turn, score the whitespace
lm-eval moves into the continuation separately (and take it out), and count the scored tokens with the evaluated
model's tokenizer.
"""

import datetime
import logging
from functools import lru_cache, partial

from lm_eval.api.instance import Instance
from lm_eval.api.metrics import mean
from lm_eval.api.task import ConfigurableTask

from harness_ext import continuation, data, embeddings, metrics, models, probe, prompts

log = logging.getLogger(__name__)

BERTSCORE_PARTS = metrics.BERTSCORE


class _FM5Task(ConfigurableTask):
    """What both families share: metadata, the prompt, and the exact token counts of scored continuations."""

    FAMILY = ""

    def __init__(self, config=None):
        # lm-eval hands a `class:` task its whole YAML, the `class` key included, which TaskConfig does not accept
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"})
        meta = self.config.metadata
        meta["fm5_data_sha256"] = data.file_sha256(self._source(meta))
        self._contexts = {}  # doc key -> the prompt sent (this process's shard), for the token counts
        self._system_instruction = None

    @staticmethod
    def _source(meta):
        """The file the documents come from (its sha256 is recorded in the results)."""
        return data.resolve_data_path(meta.get("fm5_data"))

    @staticmethod
    def _key(doc) -> str:
        """The document's key for the remembered prompt: its id (the continuation probe: its item)."""
        return str(doc.get("item", doc["id"]))

    @property
    def variant(self) -> str:
        return self.config.dataset_name

    def higher_is_better(self):
        return {name: metrics.METRICS[name].higher_is_better for name in metrics.family_metrics(self.FAMILY)}

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
        self._system_instruction = system_instruction
        messages = prompts.build_messages(doc, self.variant, system_instruction)
        if apply_chat_template and chat_template:
            return chat_template(messages, add_generation_prompt=True)
        return prompts.render_plain(messages)

    def _scored(self, doc, ctx, continuations, kwargs, start: int = 0) -> list[Instance]:
        """Loglikelihood requests for each continuation, then one for the prompt's trailing whitespace alone:
        lm-eval moves that whitespace (e.g. the "\n" after "assistant") into every continuation, so its
        log-likelihood is scored once and taken out again. ``kwargs``: lm-eval's, chat-template keys removed."""
        _warn_if_dated(ctx)
        self._contexts[self._key(doc)] = ctx
        requests = [Instance("loglikelihood", doc, (ctx, c), idx=start + i, **kwargs)
                    for i, c in enumerate(continuations)]
        stripped = ctx.rstrip()
        if stripped != ctx:
            requests.append(Instance("loglikelihood", doc, (stripped, ctx[len(stripped) :]),
                                     idx=start + len(requests), **kwargs))
        return requests

    def _tokens(self, doc, continuation: str) -> int:
        """Tokens of ``continuation`` whose log-likelihood lm-eval summed after this doc's prompt, with the evaluated
        model's tokenizer (from --model_args, which lm-eval merges into the task metadata, or --metadata
        fm5_tokenizer)."""
        meta = self.config.metadata
        source = meta.get("fm5_tokenizer") or meta.get("tokenizer")
        if not (source or meta.get("pretrained")):
            raise ValueError(
                f"{self.config.task}: token counts need the model's tokenizer; pass pretrained= in --model_args "
                "or --metadata '{\"fm5_tokenizer\": PATH}'"
            )
        tok = models.load_tokenizer(meta.get("pretrained"), meta.get("gguf_file"), source)
        ctx = self._contexts.get(self._key(doc))
        if ctx is None:
            raise RuntimeError(f"{self.config.task}: no request was built for doc {self._key(doc)!r} in this process")
        add_bos = meta.get("add_bos_token")
        return models.continuation_tokens(tok, ctx, continuation, None if add_bos is None else _bool(add_bos))


def _bool(value) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


class FM5QATask(_FM5Task):
    FAMILY = "qa"

    def __init__(self, config=None):
        super().__init__(config)
        meta = self.config.metadata
        backbone = models.bertscore_backbone(meta.get("bertscore_model"), meta.get("bertscore_num_layers"))
        # recorded in the results file's task config, so scores of different backbones are never mixed silently
        meta["bertscore_backbone"] = backbone["name"]
        self._backbone = backbone

    def construct_requests(self, doc, ctx, **kwargs):
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        generation = Instance("generate_until", doc, (ctx, dict(self.config.generation_kwargs)), idx=0, **kwargs)
        return [generation, *self._scored(doc, ctx, [prompts.completion_text(doc)], kwargs, start=1)]

    def process_results(self, doc, results):
        generation, (ll_with_ws, _) = results[0], results[1]
        ll_ws = results[2][0] if len(results) > 2 else 0.0
        prediction, reference = generation.strip(), prompts.completion_text(doc)
        pair = (prediction, reference)
        return {
            "perplexity": (ll_ws - ll_with_ws, self._tokens(doc, reference)),
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

    def _bertscore_mean(self, part: int, items) -> float:
        predictions, references = zip(*items)
        scores = _bertscore_cached(tuple(predictions), tuple(references), self._backbone["model"],
                                   self._backbone["num_layers"])
        return metrics.mean(scores[part])


class FM5MCTask(_FM5Task):
    """Requests per question: each option after the prompt (K + 1), the prompt's trailing whitespace alone (1),
    and each option after the prompt with the question and passage removed (K + 1), for ``acc_pmi``."""

    FAMILY = "mc"

    def __init__(self, config=None):
        super().__init__(config)
        meta = self.config.metadata
        meta["fm5_mc_distractors"] = probe.distractor_count(meta.get("fm5_mc_distractors", probe.DEFAULT_DISTRACTORS))
        # recorded in the results: the options depend on them (fm5_mc_embedding itself may be a local path)
        meta["fm5_mc_embedding_model"] = embeddings.embedding_model(meta.get("fm5_mc_embedding"))["name"]
        meta["fm5_mc_max_cosine"] = probe.MAX_COSINE

    def construct_requests(self, doc, ctx, **kwargs):
        apply_chat_template = kwargs.pop("apply_chat_template", False)
        chat_template = kwargs.pop("chat_template", None)
        # the same prompt with the question (and passage) removed: the options' prior in this answer slot
        neutral = prompts.build_messages({**doc, "question": "", "passage": ""}, "closed", self._system_instruction)
        neutral_ctx = (chat_template(neutral, add_generation_prompt=True) if apply_chat_template and chat_template
                       else prompts.render_plain(neutral))
        requests = self._scored(doc, ctx, doc["choices"], kwargs)
        n = len(requests)
        return requests + [Instance("loglikelihood", doc, (neutral_ctx, c), idx=n + i, **kwargs)
                           for i, c in enumerate(doc["choices"])]

    def process_results(self, doc, results):
        choices = doc["choices"]
        k1 = len(choices)
        lls = [float(r[0]) for r in results[:k1]]
        has_ws = len(results) == 2 * k1 + 1
        ll_ws = float(results[k1][0]) if has_ws else 0.0
        unconditional = [float(r[0]) for r in results[k1 + int(has_ws) :]]
        return metrics.mc_scores(
            int(doc["gold"]), lls, [len(c) for c in choices], [ll - ll_ws for ll in lls],
            [self._tokens(doc, c) for c in choices], unconditional,
        )

    def aggregation(self):
        return {name: mean for name in metrics.family_metrics(self.FAMILY)}


class FM5DocTask(FM5MCTask):
    """The passage-continuation probe (fm5_doc_mc, harness_ext.continuation): each option after the preceding text
    of its passage, as plain text. No chat template (``--apply_chat_template`` is ignored by this task: the document
    stage trains plain text, and a sentence's continuation is not a chat turn); lm-eval still records the flag.
    The question probe's option settings (K, embedding, near-duplicate cosine) are recorded the same way."""

    FAMILY = "doc"

    def __init__(self, config=None):
        super().__init__(config)
        self.config.metadata["fm5_doc_rule"] = continuation.RULE

    @staticmethod
    def _source(meta):
        document = meta.get("fm5_document")
        return data.existing_file(document, "fm5_document") if document else data.resolve_data_path(
            meta.get("fm5_data"))

    def fewshot_context(self, doc, num_fewshot, *args, **kwargs):
        if num_fewshot:
            raise ValueError(f"{self.config.task} is zero-shot; --num_fewshot is not supported")
        return doc["context"]

    def construct_requests(self, doc, ctx, **kwargs):
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        return self._scored(doc, ctx, doc["choices"], kwargs)

    def process_results(self, doc, results):
        choices = doc["choices"]
        lls = [float(r[0]) for r in results[: len(choices)]]
        ll_ws = float(results[len(choices)][0]) if len(results) > len(choices) else 0.0
        return metrics.continuation_scores(int(doc["gold"]), lls, [len(c) for c in choices],
                                           [ll - ll_ws for ll in lls], [self._tokens(doc, c) for c in choices])


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
