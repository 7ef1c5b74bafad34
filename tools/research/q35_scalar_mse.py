#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""First measurements for the ~3.5-bit format design (issue #6): weight-level normalised MSE of
scalar block quantizers with a best-MSE scale search, on Gaussian and heavy-tailed (Student-t)
weights. Run: python3 tools/research/q35_scalar_mse.py  (numpy only; ~1 minute).
Levels are in units of the block scale; 'log8' = 8-bit log-coded scale (2^(k/16)).
"""
import numpy as np, sys
rng=np.random.default_rng(0)

def quant_scalar(W, levels, bs, scale_bits=None, ncand=96):
    """W: (nb, bs) blocks. levels: sorted codebook (in units of scale). Best-MSE scale per block
    over candidates; optional scale quantization to a log grid with 2^scale_bits steps per octave-ish."""
    amax=np.abs(W).max(1,keepdims=True)+1e-30
    lmax=np.abs(levels).max()
    best=np.full(W.shape[0],np.inf); out=np.zeros_like(W)
    for f in np.linspace(0.45,1.15,ncand):
        s=amax*f/lmax
        if scale_bits is not None:  # log-quantized scale: 2^(k/16)
            k=np.round(np.log2(s)*16); s=2.0**(k/16)
        # nearest level
        z=W/s
        idx=np.abs(z[...,None]-levels[None,None,:]).argmin(-1)
        q=levels[idx]*s
        # least-squares refit of scale given assignment (then re-quantize scale if needed)
        num=(q/s*W).sum(1,keepdims=True); den=((q/s)**2).sum(1,keepdims=True)+1e-30
        s2=num/den
        if scale_bits is not None:
            k=np.round(np.log2(np.maximum(s2,1e-30))*16); s2=2.0**(k/16)
        q2=(q/s)*s2
        err=((W-q2)**2).sum(1)
        m=err<best; best[m]=err[m]; out[m]=q2[m]
    return out

def nrmse(W,Q): return ((W-Q)**2).sum()/(W**2).sum()

lm3=np.array([-2.152,-1.344,-0.756,-0.245,0.245,0.756,1.344,2.152])
uni3=np.arange(-4,4,dtype=float)
uni3s=np.arange(-3.5,4,1.0)
uni4=np.arange(-8,8,dtype=float)
def data(kind,n=32*20000):
    if kind=='gauss': return rng.standard_normal(n)
    if kind=='t4': return rng.standard_t(4,n)
    if kind=='t3': return rng.standard_t(3,n)
for kind in ['gauss','t4','t3']:
    x=data(kind)
    res={}
    for name,lev,bs,sb in [('q4_0-like u16 b32 fp16 (4.5)',uni4,32,None),
                           ('q3k-like u8 b16 (3.44)',uni3,16,8),
                           ('u8sym b32 fp16 (3.5)',uni3s,32,None),
                           ('lm8 b32 fp16 (3.5)',lm3,32,None),
                           ('lm8 b16 log8 (3.5)',lm3,16,8),
                           ('u8sym b16 log8 (3.5)',uni3s,16,8),
                          ]:
        W=x.reshape(-1,bs)
        Q=quant_scalar(W,lev,bs,sb)
        res[name]=nrmse(W,Q)
    print(kind, {k:round(v,5) for k,v in res.items()})
