#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Effect of a random-sign Hadamard rotation of each 32/64/256-element chunk of the input
dimension before block quantization (weights rotated offline, activations online by the same
orthogonal map, so W x is unchanged). Needs q35_scalar_mse.py beside it. numpy only.
"""
import os
os.chdir(os.path.dirname(os.path.abspath(__file__)))
import numpy as np
src=open('q35_scalar_mse.py').read()
exec(src.split("lm3=")[0]); exec(src[src.index("def data"):src.index("for kind")])
lm3=np.array([-2.152,-1.344,-0.756,-0.245,0.245,0.756,1.344,2.152])
uni3=np.arange(-4,4,dtype=float)
def hadamard(n):
    H=np.array([[1.0]])
    while H.shape[0]<n: H=np.block([[H,H],[H,-H]])
    return H/np.sqrt(n)
for kind in ['gauss','t4','t3']:
    x=data(kind)
    for hb in [0,32,64,256]:
        X=x.copy()
        if hb:
            H=hadamard(hb)*rng.choice([-1,1],hb)[None,:]
            X=(X.reshape(-1,hb)@H.T).reshape(-1)
        r={}
        for name,lev,bs,sb in [('q3k-like',uni3,16,8),('lm8 b16 log8',lm3,16,8),('lm8 b32 log8 (3.25)',lm3,32,8)]:
            W=X.reshape(-1,bs); r[name]=round(nrmse(W,quant_scalar(W,lev,bs,sb,48)),5)
        print(kind,'hadamard',hb,r)
