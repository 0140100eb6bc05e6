// kvc-run --invoke: one call of a tensor function on safetensors inputs,
// arguments by kvc.name or arg<i>, results by kvc.name or result<i>.
// RUN: %python -c "import numpy as np, sys; sys.path.insert(0, '%kvc_src_root/python_bindings/kvc'); import safetensors as st; st.write('%t.in', {'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'arg1': np.full((2, 3), 0.5, np.float32), 'arg2': np.array([3, -4], np.int64), 'wrong': np.zeros((3, 2), np.float32), 'half': np.zeros((2, 3), np.float16)})"
// RUN: kvc-run --invoke=main --inputs=%t.in --outputs=%t.out %s | FileCheck %s
// RUN: %python -c "import sys; sys.path.insert(0, '%kvc_src_root/python_bindings/kvc'); import safetensors as st; t, _ = st.read('%t.out'); print(sorted(t)); print(t['sum'].tolist()); print(t['result1'].tolist())" | FileCheck %s --check-prefix=OUT
// CHECK: kvc-run: called @main with 3 arguments, wrote 2 results
// OUT: ['result1', 'sum']
// OUT-NEXT: {{\[\[}}0.5, 1.5, 2.5], [3.5, 4.5, 5.5]]
// OUT-NEXT: [6, -8]

// Bad inputs: a located error naming the argument, exit code 1.
// RUN: not kvc-run --invoke=main --inputs=%t.missing --outputs=%t.out %s 2>&1 | FileCheck %s --check-prefix=NOFILE
// NOFILE: kvc-run: error: {{.*}}missing
// RUN: not kvc-run --invoke=nope --inputs=%t.in --outputs=%t.out %s 2>&1 | FileCheck %s --check-prefix=NOFUNC
// NOFUNC: error: kvc-run: no function @nope
// RUN: not kvc-run --invoke=shape --inputs=%t.in --outputs=%t.out %s 2>&1 | FileCheck %s --check-prefix=SHAPE
// SHAPE: invoke.mlir:[[@LINE+10]]:1: error: kvc-run: argument #0 ('wrong'): the file's shape [3,2] does not fit 'tensor<2x3xf32>'
// RUN: not kvc-run --invoke=dtype --inputs=%t.in --outputs=%t.out %s 2>&1 | FileCheck %s --check-prefix=DTYPE
// DTYPE: error: kvc-run: argument #0 ('half'): the file holds F16, the function takes F32
// RUN: not kvc-run --invoke=absent --inputs=%t.in --outputs=%t.out %s 2>&1 | FileCheck %s --check-prefix=ABSENT
// ABSENT: error: kvc-run: argument #1 ('b_missing'): no tensor 'b_missing' in the input files
// RUN: not kvc-run --invoke=dynamic --inputs=%t.in --outputs=%t.out %s 2>&1 | FileCheck %s --check-prefix=DYN
// DYN: error: result #0 ('result0') must be a static tensor
// RUN: not kvc-run --invoke=main --inputs=%t.in %s 2>&1 | FileCheck %s --check-prefix=NOOUT
// NOOUT: kvc-run: error: --invoke needs --outputs

func.func @shape(%a: tensor<2x3xf32> {kvc.name = "wrong"}) -> tensor<2x3xf32> {
  return %a : tensor<2x3xf32>
}

func.func @dtype(%a: tensor<2x3xf32> {kvc.name = "half"}) -> tensor<2x3xf32> {
  return %a : tensor<2x3xf32>
}

func.func @absent(%a: tensor<2x3xf32> {kvc.name = "a"}, %b: tensor<4xf32> {kvc.name = "b_missing"}) -> tensor<2x3xf32> {
  return %a : tensor<2x3xf32>
}

func.func @dynamic(%a: tensor<?x3xf32> {kvc.name = "a"}) -> tensor<?x3xf32> {
  return %a : tensor<?x3xf32>
}

func.func @main(%a: tensor<2x3xf32> {kvc.name = "a"}, %b: tensor<2x3xf32>,
                %i: tensor<2xi64>)
    -> (tensor<2x3xf32> {kvc.name = "sum"}, tensor<2xi64>) {
  %0 = arith.addf %a, %b : tensor<2x3xf32>
  %1 = arith.addi %i, %i : tensor<2xi64>
  return %0, %1 : tensor<2x3xf32>, tensor<2xi64>
}
