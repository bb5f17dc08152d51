"""Plain-words explanations of the methods, settings, metrics and charts of every page, kept in one place.

One sentence per concept, written against what ``core`` computes (checked there, e.g. which substrate the
deletion curve uses and which direction of its AUC is better). A concept that appears on two pages (ε, the
substrate that hides pixels, a run's time) has one text, used by both. The pages pass these as ``help=`` or
show them as captions; ``tests/test_explanations.py`` checks every control has one and the key facts hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import streamlit as st

Page = Literal["captioning", "saliency", "adversarial", "style", "datasets"]

#: One sentence per control, metric or chart, by concept.
HELP: Final[Mapping[str, str]] = {
    # -- shared by several pages -------------------------------------------------------------------------------
    "substrate": "What hidden pixels become: **blur** puts in a strongly blurred copy (colours and layout stay, the "
    "details a model needs go); **mean** puts in the image's average colour (nothing left, but flat patches look "
    "unusual to a model).",
    "epsilon": "ε caps how far any pixel may move, in grey levels out of 255: ε = 8/255 lets each colour value of "
    "each pixel change by at most 8 of its 255 levels (about 3%); ε = 2/255, by two, is usually invisible.",
    "steps": "How many small gradient steps the attack takes: more steps find a stronger change within the same ε, "
    "and take longer.",
    "alpha": "How far one step moves each pixel, in grey levels out of 255; after every step the change is "
    "clipped back to at most ε.",
    "time": "Seconds this took on this server (shared with other visitors, so only a rough guide).",
    # -- captioning ------------------------------------------------------------------------------------------
    "captioners": "Captioning models that describe the same image side by side, so their words and maps can be "
    "compared.",
    "scene_seed": "Which synthetic scene to draw: each number gives another arrangement of shapes.",
    "strategy": "How the next word is chosen at each step.",
    "beams": "How many partial captions beam search keeps at each step: more searches wider for a more likely "
    "whole caption, and is slower.",
    "top_p": "Sampling draws only from the most likely next words whose probabilities add up to p: lower keeps "
    "to safe words, 1.0 allows any word.",
    "temperature": "Sharpens or flattens the model's odds before sampling: below 1 favours the likely words, "
    "above 1 gives unlikely words more chance (more surprising, less accurate captions).",
    "sample_seed": "The random draw behind sampling: the same seed gives the same caption again.",
    "max_tokens": "The longest caption allowed, in tokens (words or pieces of words).",
    "repetition_penalty": "Lowers the odds of tokens already written (1.0 = off): higher discourages repeated words.",
    "aggregation": "How the model's many attention maps (one per layer and head) become one heatmap per word.",
    "layer": "Which decoder layer's attention to show, counted from the last (1 = last layer).",
    "head": "Which attention head of that layer to show (used by **One layer and head**).",
    "last_k": "How many of the last layers **Mean of the last k layers** averages.",
    "opacity": "How opaque the heatmap is over the image (0 shows the image only).",
    "caption_time": "Seconds the model took to write its caption here (the heatmaps' extra pass is not counted).",
    "model_size": "Memory the loaded model takes on this server (its download size while it is not loaded).",
    "word_heatmap": "Each word's heatmap shows where in the image the model looked while writing that word: the "
    "shares add up to 1 over the grid of image patches, so a hot patch took much of the attention.",
    "token_probability": "Each bar is how sure the model was of that word, given the image and the words before "
    "it (the product of its pieces' probabilities): a low bar marks a guess; hover for the alternatives it weighed.",
    "layer_head_grid": "One word's attention in every layer (rows, first at the top) and head (columns), each tile "
    "scaled to its own maximum: heads specialize, so only some of them point at the object the word names.",
    "grid_word": "The word whose attention is shown (or tested).",
    "grid_model": "The captioner whose attention is shown (or tested).",
    "reverse_bars": "How strongly each word attended to the clicked point, as a multiple of even attention: 1 means "
    "the word looked there no more than anywhere else, above 1 means it looked there more.",
    "caption_faithfulness": "Change in log p(word) as its most-attended patches are hidden (below 0: the word became "
    "less likely): if it falls below the random curve, beyond its error bars, the attention points at what the "
    "word needs.",
    # -- saliency ---------------------------------------------------------------------------------------------
    "methods": "Each method answers “which pixels mattered for this class?” in its own way.",
    "sign": "Which part of the map is drawn and ranked.",
    "view": "How each map is drawn.",
    "shared_scale": "On: the same value has the same colour in every map, so maps compare by strength (meaningful "
    "only among methods with the same units); off: each map is scaled to its own range.",
    "sg_samples": "How many noisy copies of the image SmoothGrad averages: more gives a steadier map, at one "
    "backward pass each.",
    "sg_sigma": "How strong the noise added to each copy is, as a % of the image's value range: too little leaves "
    "the gradient's speckle, too much blurs the map away.",
    "ig_tolerance": "Integrated Gradients' pixel values should add up to how much the class score changes from the "
    "baseline to the image; the steps are doubled from 8 until they do within this %, 0 uses the maximum steps.",
    "ig_steps": "The most points on the path from the baseline to the image where the gradient is taken: more is "
    "more exact and slower.",
    "ig_baseline": "What “no information” looks like: Integrated Gradients explains the score change from this "
    "picture to the image.",
    "cam_layer": "Which layer's activations Grad-CAM weighs: the last (default) is coarse but closest to the class "
    "decision; earlier layers are sharper and respond to simpler patterns.",
    "explain_class": "The class the maps explain; the model's top prediction by default.",
    "contrast": "Explain what separates class A from class B: the maps show the score of A minus the score of B, "
    "so evidence shared by both cancels out.",
    "class_b": "The class to contrast with (when **…rather than** is on).",
    "predictions": "The classifier's five most likely classes for this image and their probabilities.",
    "maps": "Strong colour marks the pixels a method found most important for the class (with Sign = signed, one "
    "colour is for it and the other against); the line under a map gives its time and cost.",
    "measure": "Run the deletion and insertion test on every map (22 altered images through the model per map).",
    "deletion": "Deletion: the image's 32×32 regions are replaced by the substrate, most important first by the "
    "map as drawn, and the class's probability is tracked; its AUC (area under the curve, 0 to 1): lower is "
    "better, because a faithful map removes what the model needs first.",
    "insertion": "Insertion: starting from the substrate, the regions are restored in the same order; its AUC: "
    "higher is better, because a faithful map brings the evidence back first.",
    "random_order": "Dashed grey is the random order of regions: a map is only useful where it beats it.",
    "scrub": "How much of the image the strip below shows removed, by each method's ranking.",
    "sanity_trend": "How similar each map stays to the trained model's map as layers are randomized from the output "
    "down: Spearman rank correlation (1 = same ranking of pixels) and SSIM (1 = same picture) should fall towards "
    "0; a method whose correlation stays at 0.6 or more on average is flagged.",
    "sanity_maps": "Each method's map (rows) after each step of randomization (columns): a map that explains the "
    "model dissolves to the right; one that keeps its shape shows the image's edges instead.",
    # -- adversarial ------------------------------------------------------------------------------------------
    "mode": "Attack a classifier (one label) or a captioner (a whole sentence).",
    "attack": "How the change δ is found.",
    "norm": "How the size of the change is measured.",
    "epsilon_l2": "ε₂ bounds the length of the whole change over all pixel values (each from 0 to 1): 0.5 spread "
    "evenly over a 224×224 image is a third of a grey level per value, or it can go to a few pixels.",
    "goal": "Where the attack pushes the prediction.",
    "target_class": "The class the attack pushes towards when the goal is **Chosen class**.",
    "random_start": "Start at a random point within ε (PGD) instead of at the clean image (BIM): with restarts it "
    "can escape a bad first try.",
    "restarts": "PGD runs this many times from different random starts and keeps the run that fooled the model, "
    "else the one with the highest loss.",
    "attack_images": "The clean image, the attacked one, and the change δ stretched so its largest value is full "
    "contrast (mid-grey: no change), since the real change is too small to see.",
    "saliency_toggle": "Vanilla-gradient saliency of the top prediction on the clean and on the adversarial image: "
    "where the model's evidence sat before and after the attack.",
    "delta_linf": "The largest change of any pixel value, in grey levels out of 255: at most ε.",
    "delta_l2": "The length of the whole change over all pixel values (0–1 units): small when few pixels change "
    "or all change a little.",
    "psnr": "Peak signal-to-noise ratio of the adversarial image against the clean one, in decibels: higher is "
    "closer; above about 40 dB the difference is hard to see.",
    "ssim": "Structural similarity of the two images, from 0 to 1: 1 means the same structure (edges, textures).",
    "topk": "The five most likely classes before (left) and after (right) the attack, with their probabilities.",
    "pgd_steps": "At each PGD step: the loss the attacker pushes up (left) and the probabilities of the attacked "
    "class, the new top-1 and any target (right).",
    "robustness_curve": "The attacked class's probability as ε grows, per attack (filled marker: still the top-1, "
    "open: fooled); the dotted line is the sidebar's ε; a curve that drops at small ε means the model is easy "
    "to fool, while Noise usually stays high.",
    "ribbon": "The winning class at each ε, one row per attack: where the colour changes, the prediction flipped.",
    "minimal_eps": "Minimal flipping ε: the smallest ε at which the attack changes the top-1, found by halving the "
    "interval between the last ε that did not and the first that did; lower means easier to fool.",
    "accuracy_curve": "The share of the labelled sample photos still classified correctly at each ε, per attack.",
    "attack_source": "Attack a synthetic ShapesWorld scene (what the built-in captioner knows) or the image picked "
    "above.",
    "log_p_target": "How likely the captioner finds the target caption for the attacked image (log probability: 0 "
    "would be certain; the small number is the change from the clean image, higher is closer to the target).",
    "steps_done": "How many steps the attack ran.",
    # -- style transfer ---------------------------------------------------------------------------------------
    "second_style": "Mix in a second style image: the style target (its Gram matrices, which features occur "
    "together) is a weighted mix of both.",
    "style_share": "How much of the style target comes from the second image (0: the first only, 1: the second).",
    "content_weight": "How strongly the result must keep the content image's features (objects and layout) at the "
    "content layer: raise it to keep more of the photo.",
    "style_weight": "How strongly the result must match the style image's textures (Gram matrices) at the style "
    "layers: the style/content ratio is what counts, higher gives more brushwork and less photo.",
    "tv_weight": "Penalty on differences between neighbouring pixels: higher gives a smoother picture with less "
    "speckle, too high washes out detail.",
    "content_layer": "Where the content must match: a deeper layer keeps objects and layout and lets textures and "
    "colours change; a shallow one keeps the exact pixels.",
    "style_layers": "Where the textures must match: shallow layers carry fine grain and colour, deeper ones larger "
    "patterns.",
    "layer_weight": "This layer's share of the style loss (1 = as much as the others).",
    "resolution": "Longest side of the result in pixels: larger shows finer strokes and costs about in proportion "
    "to the number of pixels.",
    "style_steps": "Loss evaluations at the full size (after the coarse stages, when coarse → fine is on).",
    "optimizer": "L-BFGS uses the curve of the loss and usually gets there in far fewer steps; Adam takes small "
    "steady steps and is the safer choice when the loss explodes.",
    "init": "The starting picture: the content image (fastest, keeps the layout), the style image, or random noise "
    "(set by the noise seed).",
    "colour": "luminance: transfer only brightness and keep the content's colours; histogram: recolour the style "
    "images to the content's colour statistics first.",
    "coarse_to_fine": "Settle the picture at a quarter and at half the size first, then sharpen it at full size: "
    "reaches the same loss several times sooner.",
    "noise_seed": "The random start's seed, used when **Start from** is noise: the same seed gives the same run.",
    "more_steps": "How many loss evaluations **Continue** adds to the run.",
    "loss_chart": "Each loss term times its weight, on a log scale, one point per loss evaluation (total = content "
    "+ style layers + TV): they should fall and flatten, and the largest term dominates the look.",
    "filmstrip": "The picture at saved steps of the run: pick a step to see it large.",
    # -- datasets -----------------------------------------------------------------------------------------------
    "task": "Which kind of results file to show: each dataset job writes one kind.",
    "source": "Where the results come from.",
    "ds_file": "A results file (.parquet) in this server's results folder.",
    "ds_upload": "A results file written by `python -m core.batch` (or downloaded from this page's own job).",
    "ds_accuracy": "Top-1 accuracy over the set at each ε (in grey levels out of 255), one line per model and attack; "
    "the shaded band is the Wilson 95 % interval (the range the true accuracy lies in, given this many images: "
    "narrower with more images) and the dotted line the clean accuracy; a curve that falls fast means small "
    "changes flip most images.",
    "ds_accuracy_low": "Lower end of the Wilson 95 % interval of the accuracy at this ε.",
    "ds_accuracy_high": "Upper end of the Wilson 95 % interval of the accuracy at this ε.",
    "ds_ranking": "Each method's mean deletion AUC (lower is better: removing its top-ranked regions first kills "
    "the score fast) and insertion AUC (higher is better), with seeded bootstrap 95 % intervals over images (the "
    "mean's spread when the images are resampled); the dashed line is the random order: a method on its wrong "
    "side does no better than chance.",
    "ds_model": "The classifier whose methods are ranked (each model is ranked on its own).",
    "ds_interval": "Bootstrap 95 % interval of the mean AUC: overlapping intervals mean the set cannot tell the two "
    "methods apart.",
    "ds_captioners": "One row per captioner: scores against the reference captions, over the images that have them, "
    "and the length, vocabulary and confidence of its captions over every image.",
    "bleu4": "Corpus BLEU-4: how many of the captions' 1- to 4-word runs appear in their references (counted "
    "over the whole set, with a penalty for short captions), from 0 to 1: higher is closer to the references.",
    "cider_d": "CIDEr-D: agreement of word runs with the references, weighted by IDF computed over this set's "
    "references (so words every reference uses count little), 10 for a caption equal to all its references: "
    "higher is better.",
    "mean_word_prob": "The model's average probability of the words it wrote: low means it was guessing.",
    "grounding": "ShapesWorld scenes only: the share of object words whose attention peak lies on the object "
    "the word names (1 = always looked at the right object).",
    "ds_worst": "The images each model does worst on: robustness, those flipped at the smallest ε; saliency, "
    "each method's highest deletion AUC; captions, the lowest mean word probability and lowest CIDEr-D.",
    "ds_worst_group": "Which model and attack, method or score the worst cases are listed for.",
    "ds_worst_score": "The group's score of this image: its mean word probability, or its CIDEr-D against its "
    "references (lowest first).",
    "ds_min_flip": "Minimal flipping ε in grey levels out of 255 (/255): the smallest budget at which the attack "
    "changed this image's top-1 (0: already wrong before any attack).",
    "ds_errors": "Images the job could not process, with why (unreadable, or a model error): they count in no score.",
    "ds_rows": "The file's rows as the job wrote them, one per image (and model, method or ε); click a row to open "
    "its image on its own page.",
    "job_models": "The models the job runs (only those ready on this server).",
    "job_images": "The images the job runs on: samples, images in your tray, or uploads (50 at most).",
    "job_attacks": "The attacks run at every ε (FGSM: one gradient step; PGD: several; Noise: random ±ε, the control).",
    "job_eps": "The budgets ε, in grey levels out of 255, at which every image is attacked (0 = the clean image).",
    "job_methods": "The saliency methods whose maps are measured by the deletion and insertion test.",
    "feature_net": "The trained network whose features define content (objects and layout) and style (textures): "
    "VGG19 is the classic choice; the built-in EfficientNet stands in while it is not downloaded.",
    # -- shared pickers -------------------------------------------------------------------------------------------
    "image_source": "Where the image comes from.",
    "image_sample": "A bundled sample image (the photos carry labels the pages check predictions against).",
    "image_upload": "A JPEG, PNG, WebP, GIF, BMP or TIFF file of at most 25 MB; only its first frame is used.",
    "image_camera": "Your browser asks once for permission to use the camera; the photo is kept in this "
    "session's tray, never stored on the server.",
    "image_link": "The address of an image on a public site (http or https); it is fetched when you press **Open "
    "link**, never just by opening a page.",
    "image_tray": "An image from this session's tray: uploads, photos, links and results other pages sent there.",
    "model_choice": "The model that runs: the status under it says whether it is ready here, downloadable or not "
    "available.",
    # -- captioning tables ----------------------------------------------------------------------------------------
    "ref_bleu4": "BLEU-4 against your references, without smoothing: 0 unless some 4-word run matches, 1 for a "
    "caption equal to a reference.",
    "ref_cider": "CIDEr-D against your references; on one image IDF is uniform (document frequencies need a "
    "corpus): 10 means the caption equals every reference.",
    "score_word_p": "How likely the model found this word after the image and the words before it (0 to 1).",
    "score_log_p": "The natural log of that probability: 0 is certain, more negative is more surprising; a "
    "caption's log p is their sum.",
    "score_alternatives": "The words the model itself found most likely at this position, with their probabilities.",
    "score_total": "The whole caption's log probability for this model (the sum over its words): closer to 0 is "
    "more likely; longer captions score lower.",
    "score_per_word": "The caption's log probability divided by its words, to compare captions of different lengths.",
    "score_caption": "Type a caption: every chosen model reads it word by word and says how likely it finds each word.",
    "score_delta": "log p(A) − log p(B): above 0 the model prefers caption A, below 0 caption B.",
    "score_ratio": "How many times likelier the model found A's word than B's at their first difference.",
}

#: One sentence per option of a multiple-choice setting, keyed by the option's value.
CHOICES: Final[Mapping[str, Mapping[str, str]]] = {
    "strategy": {
        "greedy": "always the single most likely next word: fast and repeatable, sometimes bland.",
        "beam": "keeps several partial captions and returns the most likely whole one.",
        "sample": "draws each word at random from the model's odds, shaped by temperature and top-p.",
    },
    "aggregation": {
        "head-mean": "the average of all heads of one layer.",
        "head-max": "the strongest head at each patch in one layer, so a patch any one head looks at stands out.",
        "last-k": "the average of all heads of the last k layers.",
        "layer-head": "one head of one layer, as the model computed it.",
        "rollout": "the word's attention carried back through the image encoder's own attention layers (skip "
        "connections included) to the input patches; one layer shows where it looked among features that "
        "earlier layers have already mixed across the image.",
        "gradient": "one layer's attention weighted by how much each value raises the word's log probability "
        "(negative parts dropped), averaged over heads: only attention that helped predict the word.",
    },
    "methods": {
        "gradient": "how much a tiny change of each pixel would change the class score: sharp but noisy.",
        "grad_x_input": "the gradient times the pixel's value: a signed estimate of each pixel's contribution.",
        "smoothgrad": "the gradient averaged over noisy copies of the image: less speckle.",
        "integrated_gradients": "gradients summed along a path from a baseline picture to the image; the values add "
        "up to the score change, for and against the class.",
        "guided_backprop": "gradients with negative parts cut at every ReLU (the on/off switches): crisp edges, "
        "but often the same for any model (see the sanity check).",
        "gradcam": "one layer's activations weighted by their average gradient: a coarse blob where the class's "
        "evidence is.",
        "gradcam_pp": "Grad-CAM with pixel-wise weights of positive gradients: better when the class appears "
        "several times.",
    },
    "sign": {
        "absolute": "how much a pixel matters, for or against.",
        "positive": "only the evidence for the class.",
        "signed": "for (positive) and against (negative) on a two-sided colour scale.",
    },
    "view": {
        "overlay": "the map over the image.",
        "heatmap": "the map alone.",
        "original": "the image alone, to compare.",
    },
    "ig_baseline": {
        "black": "an all-black image.",
        "blurred": "a strongly blurred copy.",
        "noise": "random noise.",
        "mean": "the image's average colour.",
    },
    "attack": {
        "FGSM": "one step of size ε in the direction that most helps the goal (the sign of the gradient).",
        "PGD": "many small steps, each kept within ε: stronger than one step.",
        "Noise": "random ±ε on every pixel, no gradient: the control that shows direction matters, not size.",
    },
    "norm": {
        "L∞": "every pixel value may move by at most ε.",
        "L2": "the whole change's length is at most ε₂, so a few pixels may move a lot.",
    },
    "goal": {
        "Untargeted": "away from the true class, to any other.",
        "Least likely": "towards the class the model finds least likely for this image (the hardest).",
        "Chosen class": "towards the class picked below.",
    },
    "image_source": {
        "Sample": "a bundled sample image.",
        "Upload": "a file from your device.",
        "Camera": "a photo from your camera.",
        "Link": "an image from a public web address.",
        "Tray": "an image this session already holds: uploads, photos, links and results other pages sent there.",
    },
    "task": {
        "robustness": "accuracy against ε per model and attack, and the images flipped first.",
        "saliency": "saliency methods ranked by deletion and insertion AUC against the random order.",
        "caption": "captioners scored against reference captions, with their least confident captions.",
    },
    "source": {
        "Upload": "a results file from your device.",
        "Results folder": "a file in this server's results folder.",
        "Run a job here": "run a small job (up to 50 images) on this server now and show its results.",
    },
}

#: "How to read this page": a few bullets per page.
GUIDES: Final[Mapping[Page, tuple[str, ...]]] = {
    "captioning": (
        "Pick an image and one or more captioners in the sidebar; each column shows one model's caption.",
        "Drag a column's slider to scrub through the words: the heatmap shows where the model looked while writing "
        "that word (hover any control's ⓘ for what it does).",
        "The bars under it say how sure the model was of each word: a low bar is a guess.",
        "**Aggregation** in the sidebar decides how the many attention maps of a model become one per word; "
        "rollout follows the attention back to the input patches.",
        "The tabs below test the maps: every layer and head, what each word attended to at a clicked point, and "
        "whether hiding the attended patches really hurts the word (faithfulness).",
    ),
    "saliency": (
        "Each map marks the pixels a method found most important for the class above it; methods disagree, so "
        "compare them side by side.",
        "**Faithfulness**: removing the pixels a faithful map ranks first makes the probability fall fast "
        "(deletion AUC: lower is better) and restoring them makes it rise fast (insertion AUC: higher is better).",
        "Every map must beat the dashed random order to be worth anything.",
        "**Sanity check**: a map that still looks the same after the model's weights are randomized explains the "
        "image's edges, not the model.",
        "Switch on **…rather than** to see what separates two classes.",
    ),
    "adversarial": (
        "The attack adds a small change δ to the image; ε caps it in grey levels out of 255 (ε = 8/255: at most 8 "
        "of 255 levels per pixel value).",
        "The three pictures show the clean image, the attacked one and δ made visible (amplified).",
        "**Prediction** says whether the label flipped; PSNR and SSIM say how close the two images are.",
        "The robustness curve shows the attacked class's probability as ε grows: Noise is the control that "
        "shows the direction of δ, not its size, fools the model.",
        "Minimal flipping ε: the smallest budget that changes the answer (lower = easier to fool).",
    ),
    "style": (
        "The picture is optimized so its deep features match the content image and its texture statistics match "
        "the style image.",
        "The three weights trade these off: more style weight gives more brushwork, more content weight keeps "
        "more of the photo, TV weight smooths the result.",
        "Press **Start** and watch every loss term fall on a log scale; **Stop**, change a weight, then **Continue**.",
        "The filmstrip shows the picture at saved steps; the weight explorer compares short runs at several style "
        "weights.",
    ),
    "datasets": (
        "A dataset job runs one experiment over a whole image set; pick its kind under **View** and a results file "
        "(or run a small job here) under **Results**.",
        "Every score comes with a 95 % interval: Wilson for accuracies, bootstrap for mean AUCs; overlapping "
        "intervals mean the set is too small to tell two models or methods apart.",
        "**Robustness**: accuracy against ε in grey levels out of 255; a curve that falls fast means the model is "
        "easy to fool.",
        "**Saliency**: deletion AUC lower is better, insertion AUC higher is better, and a method must beat the "
        "dashed random order to be worth anything.",
        "**Captions**: BLEU-4 and CIDEr-D compare the captions with references (higher is closer); grounding says "
        "how often an object word looked at its object.",
        "**Worst cases** and **Rows**: click a row to open its image on its own page.",
    ),
}


def choices(kind: str, labels: Mapping[Any, str] | None = None) -> str:  # Any: keys may be a Literal type
    """A setting's tooltip: its sentence, then one line per option (under its shown label)."""
    lines = [f"- **{(labels or {}).get(value, value)}**: {text}" for value, text in CHOICES[kind].items()]
    return "\n".join([HELP[kind], "", *lines])


def how_to_read(page: Page) -> None:
    """The page's "How to read this page" expander, closed so the page stays as it was for regulars."""
    with st.expander("How to read this page", icon=":material/help:"):
        st.markdown("\n".join(f"- {line}" for line in GUIDES[page]))
