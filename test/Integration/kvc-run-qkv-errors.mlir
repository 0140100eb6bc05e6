// REQUIRES: kvc-python
// kvc-run --qkv refuses recorded tokens that do not fit the step, before
// compiling it, with an error naming the file and exit 1.
// RUN: rm -rf %t && mkdir -p %t
// RUN: %python -c "import numpy as np; from kvc import safetensors as st; r = np.random.default_rng(0); st.write('%t/qkv.safetensors', {f'l0.{n}': r.standard_normal((h, 64, 64)).astype(np.float16) for n, h in (('q', 4), ('k', 2), ('v', 2))})"
// RUN: %python -c "import numpy as np; from kvc import safetensors as st; st.write('%t/narrow.safetensors', {n: np.zeros((2, 8, 32), np.float32) for n in 'qkv'})"
// RUN: %python -c "import numpy as np; from kvc import safetensors as st; st.write('%t/ints.safetensors', {n: np.zeros((h, 8, 64), np.int32) for n, h in (('q', 4), ('k', 2), ('v', 2))})"
// RUN: %python -c "import numpy as np; from kvc import safetensors as st; st.write('%t/lengths.safetensors', {n: np.zeros((h, t, 64), np.float16) for n, h, t in (('q', 4, 8), ('k', 2, 8), ('v', 2, 6))})"
//
// The tokens are read: this step (GQA 2) runs its 64 steps on them.
// RUN: kvc-run %s --steps=64 --qkv=%t/qkv.safetensors --qkv-prefix=l0. --spec="key=q2:channel:g32,value=q2:token:g32,residual=32" | FileCheck %s --check-prefix=OK
// OK: kvc-run: 64 steps, batch 1, 4 query / 2 KV heads, head_dim 64, {{.*}} tokens recorded 'l0.q', 'l0.k', 'l0.v' of qkv.safetensors (64 tokens)
// OK: PASS
//
// RUN: not kvc-run %s --qkv=%t/absent.safetensors 2>&1 | FileCheck %s --check-prefix=ABSENT
// ABSENT: kvc-run: error: --qkv: {{.*}}absent.safetensors: cannot read
// RUN: not kvc-run %s --steps=8 --qkv=%t/qkv.safetensors 2>&1 | FileCheck %s --check-prefix=NAME
// NAME: kvc-run: error: --qkv: {{.*}}qkv.safetensors: no tensor 'q'
// RUN: not kvc-run %s --steps=8 --qkv=%t/narrow.safetensors 2>&1 | FileCheck %s --check-prefix=SHAPE
// SHAPE: kvc-run: error: --qkv: {{.*}}narrow.safetensors: 'q' has shape [2, 8, 32], the step needs [4, tokens, 64]
// RUN: not kvc-run %s --steps=8 --qkv=%t/lengths.safetensors 2>&1 | FileCheck %s --check-prefix=LENGTHS
// LENGTHS: kvc-run: error: --qkv: {{.*}}lengths.safetensors: 'v' has shape [2, 6, 64], the step needs [2, 8, 64]
// RUN: not kvc-run %s --steps=8 --qkv=%t/ints.safetensors 2>&1 | FileCheck %s --check-prefix=DTYPE
// DTYPE: kvc-run: error: --qkv: {{.*}}ints.safetensors: tensor 'q' has dtype I32, not a float type
// RUN: not kvc-run %s --steps=65 --qkv=%t/qkv.safetensors --qkv-prefix=l0. 2>&1 | FileCheck %s --check-prefix=STEPS
// STEPS: kvc-run: error: --qkv: {{.*}}qkv.safetensors: 64 tokens give each of the 1 sequences 64 steps, not 65
// RUN: not kvc-run %s --qkv-prefix=l0. 2>&1 | FileCheck %s --check-prefix=PREFIX
// PREFIX: kvc-run: error: --qkv-prefix needs --qkv
// RUN: not kvc-run %s --seed=3 --qkv=%t/qkv.safetensors --qkv-prefix=l0. 2>&1 | FileCheck %s --check-prefix=SEED
// SEED: kvc-run: error: --seed picks random tokens: it does not apply with --qkv

func.func @step(%cache: !kvc.cache<1x2x?x64xf32>, %q: tensor<1x4x1x64xf32>,
                %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>) -> (tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x4x1x64xf32>
  return %o, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}
