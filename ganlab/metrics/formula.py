"""The instability score's formula in words, without torch (``ganlab eval --help`` shows it)."""

FORMULA = """\
I = 10 * sum_k(w_k * T_k) / sum_k(w_k)   over the known terms k   (0 = calm; at most 10)
I = 10 + that                            when the run is degenerate ("no adversarial signal")
I = inf                                  when any logged value is NaN or Inf (the run diverged)

weights w: collapse 2, grad_spikes 2, regression 2, oscillation 1, volatility 1, val_gap 1,
seed_spread 1. A term whose series was not logged is unknown: left out of both sums and
listed, never counted as 0. Every series is read one value per update.

collapse     C: the share of D updates at which D ranks real above fake patches almost
                perfectly, D/auc >= 0.99 (AUC of D's outputs: 0.5 chance, 1 perfect; the same
                for every loss type and unchanged by any shift or scale of D's output).
oscillation  O: for x in {D/loss_real + D/loss_fake, G/adv}, windows of 30 updates, each with
                its straight-line trend removed; per window the robust lag-1 autocorrelation
                rho = 1 - (MAD(diff e) / MAD(e))^2 / 2 (about 0 for batch noise, near 1 for
                slow swings); the mean over windows clipped to [0, 1], averaged over both series.
grad_spikes  S: an update spikes when D/grad_norm (or G/grad_norm) exceeds both
                median + 6 * 1.4826 * MAD and 2 * median of the 50 updates before it;
                with f the spike share averaged over both series, S = min(1, 10 * f).
regression   R: q = the in-loop validation curve (val/swd, else val/color_hist, val/ab_l1,
                val/L1; lower is better): R = clip((q_last - q_best) / q_best, 0, 1).
volatility   V: the curve's up-and-down movement beyond its net change, per evaluation
                interval, relative to q_best: V = min(1, 10 * (sum|dq| - |q_last - q_first|)
                / ((n - 1) * q_best)) (10 % of zig-zag per interval saturates).
val_gap      G: clip(val/L1 / train/L1 - 1, 0, 1) at the last evaluation: the same generator
                (eval mode, the moving average where kept) on validation and training crops
                (runs without train/L1: the mean G/L1 over the 50 updates before it).
seed_spread  P: given the final quality of several seeds, min(1, CV / 0.2) with CV the
                sample standard deviation over the absolute mean (unknown for one seed).

degenerate ("no adversarial signal"): no D update was logged; or D stayed at chance in every
third of the run (mean D/auc <= 0.6, and, for the loss types with a chance level -- vanilla
2 ln 2, lsgan 0.5, hinge 2, logged as D/chance_loss -- D/loss_real + D/loss_fake no more than
10 % below it); or the adversarial term's share of the gradient on G's output,
G/adv_grad_share = |g_adv| / (|g_adv| + |g_l1|), has a median below 0.01. (The chance rule
judges only after 50 D updates, the share rule with 6 logged values: a shorter run is not
labelled by them.)
"""
