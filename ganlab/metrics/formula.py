"""The instability score's formula in words, without torch (``ganlab eval --help`` shows it)."""

FORMULA = """\
instability: how the quality of the images moved over the run (and over seeds)
  I = 10 * (2 R + V) / 3                 one run (known terms only; 0 = calm, at most 10)
  I = mean over seeds of I + 10 * P / 3  a configuration trained with several seeds
  I = inf                                when any logged value is NaN or Inf (the run diverged)

q is the in-loop validation curve, one value per evaluation (lower is better): val/ab_swd for
colourisation, val/swd for paired translation (else val/swd, val/color_hist, val/ab_l1,
val/L1, the first that was logged). Its unit is the run's progress,
  s = (q_first - q_best) + 0.1 * |q_first|
so a curve is judged against what it achieved: a flat curve (at any level) against a tenth of
its level, an improving one against its improvement.

regression   R = clip((q_last - q_best) / s, 0, 1): the share of its progress the run gave
                back between its best evaluation and its last.
volatility   V = min(1, (sum|dq| - |q_last - q_first|) / ((n - 1) * s) / 0.5): the up-and-down
                movement beyond the net change, per evaluation interval (half of s saturates).
seed_spread  P = clip(sd(q_last over seeds) / mean(s over seeds), 0, 1): only where a trial
                has several seeds; it is added on top, so each run's own I is the same number
                in a search and in a confirmation.

No loss enters I: it is the same for every loss type with the same quality trajectory, and it
has no threshold. A term that cannot be computed (fewer than 2 or 3 evaluations) is unknown:
listed, left out; with no known term I = 10.

Diagnostics (ganlab eval, TensorBoard stability/*, the study report), never in I:
collapse     C: the share of D updates at which D ranks real above fake patches almost
                perfectly, D/auc >= 0.99 (AUC of D's outputs: 0.5 chance, 1 perfect).
oscillation  O: for x in {D/loss_real + D/loss_fake, G/adv}, windows of 30 updates, each with
                its straight-line trend removed; per window the robust lag-1 autocorrelation
                rho = 1 - (MAD(diff e) / MAD(e))^2 / 2; the mean over windows clipped to [0, 1],
                averaged over both series.
grad_spikes  S: an update spikes when D/grad_norm (or G/grad_norm) exceeds both
                median + 6 * 1.4826 * MAD and 2 * median of the 50 updates before it;
                with f the spike share averaged over both series, S = min(1, 10 * f).
val_gap      clip(val/L1 / train/L1 - 1, 0, 1) at the last evaluation.
adv_grad_share  the median share of G's gradient from the adversarial term,
                |g_adv| / (|g_adv| + |g_l1|) (0: the L1-only control).
auc          the median of D/auc.
loss_shape   10 * (2 C + O + 2 S) / 5, plus 10 when the run is degenerate: the loss_shape
                objective, for a search on loss behaviour (it rates a D that learns nothing
                calm, hence the +10, and so has a cliff at the degenerate rule).

degenerate ("no adversarial signal", a label only): no D update was logged; or D stayed at
chance in every third of the run (mean D/auc <= 0.6, and, for the loss types with a chance
level -- vanilla 2 ln 2, lsgan 0.5, hinge 2, logged as D/chance_loss -- D/loss_real +
D/loss_fake no more than 10 % below it); or the median adv_grad_share is below 0.01. (The
chance rule judges only after 50 D updates, the share rule with 6 logged values.)
"""
