"""The error function on a NumPy-like namespace, which has none of its own.

Vectorized form of the classic fdlibm rational approximations (Sun Microsystems, 1993; freely
usable), accurate to a few ulp in float64. Computed in float64 and cast back to the input dtype.
"""

from __future__ import annotations

from typing import Any

_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)  # fmt: skip
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)  # fmt: skip
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)  # fmt: skip
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)  # fmt: skip
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e01,
       -6.23753324503260060396e01, -1.62396669462573470355e02, -1.84605092906711035994e02,
       -8.12874355063065934246e01, -9.81432934416914548592e00)  # fmt: skip
_SA = (1.0, 1.96512716674392571292e01, 1.37657754143519042600e02, 4.34565877475229228821e02,
       6.45387271733267880336e02, 4.29008140027567833386e02, 1.08635005541779435134e02,
       6.57024977031928170135e00, -6.04244152148580987438e-02)  # fmt: skip
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e01,
       -1.60636384855821916062e02, -6.37566443368389627722e02, -1.02509513161107724954e03,
       -4.83519191608651397019e02)  # fmt: skip
_SB = (1.0, 3.03380607434824582924e01, 3.25792512996573918826e02, 1.53672958608443695994e03,
       3.19985821950859553908e03, 2.55305040643316442583e03, 4.74528541206955367215e02,
       -2.24409524465858183362e01)  # fmt: skip


def _poly(coeffs: tuple[float, ...], t: Any) -> Any:
    acc = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        acc = acc * t + c
    return acc


def _small(xp: Any, v: Any) -> Any:  # |x| < 0.84375
    z = v * v
    return v + v * (_poly(_PP, z) / _poly(_QQ, z))


def _middle(xp: Any, v: Any) -> Any:  # 0.84375 <= |x| < 1.25
    s = v - 1.0
    return _ERX + _poly(_PA, s) / _poly(_QA, s)


def _tail(r: tuple[float, ...], s: tuple[float, ...]) -> Any:  # 1.25 <= |x| < 6, in two bands
    def formula(xp: Any, v: Any) -> Any:
        z = v * v
        inv = 1.0 / z
        return 1.0 - xp.exp(-z - 0.5625 + _poly(r, inv) / _poly(s, inv)) / v

    return formula


# [low, high) of |x| -> its formula; |x| >= 6 (and inf) gives 1
_BANDS = ((0.0, 0.84375, _small), (0.84375, 1.25, _middle), (1.25, 1 / 0.35, _tail(_RA, _SA)),
          (1 / 0.35, 6.0, _tail(_RB, _SB)))  # fmt: skip


def erf(xp: Any, a: Any) -> Any:
    """erf(a) elementwise; NaN stays NaN, erf(+-inf) = +-1. Each element is computed by its own
    band's formula only (masked), so the transient memory is a few float64 copies of the input,
    not one per band and polynomial."""
    ax = xp.abs(a.astype(xp.float64))
    out = xp.ones_like(ax)
    for low, high, formula in _BANDS:
        band = (ax < high) & (ax >= low)
        if band.any():
            out[band] = formula(xp, ax[band])
    out = xp.copysign(out, a).astype(a.dtype, copy=False)  # a's sign: erf(-0.0) is -0.0
    nan = xp.isnan(a)
    if nan.any():
        out[nan] = a[nan]
    return out
