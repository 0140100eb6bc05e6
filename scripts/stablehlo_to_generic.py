#!/usr/bin/env python3
"""Print StableHLO in the generic form kvc reads.

  stablehlo_to_generic.py IN.mlir [-o OUT.mlir]     (IN may be - for stdin)

kvc has no StableHLO dialect: `kvc-opt --allow-unregistered-dialect
--kvc-stablehlo-to-linalg` reads the generic op form, where every op is
`"stablehlo.name"(...)` and every attribute is spelled out. JAX prints the
pretty form by default (`lowered.as_text()`); this script re-prints such a
file generically with the MLIR Python bindings that jaxlib ships (which
register the stablehlo dialect). From JAX directly:

  lowered = jax.jit(step).lower(*args)
  text = lowered.compiler_ir('stablehlo').operation.get_asm(
      print_generic_op_form=True)

Needs jax/jaxlib (run it with the project's .venv python).
"""
import argparse
import sys


def to_generic(text):
    """The generic form of the StableHLO module `text` (pretty or generic)."""
    # jaxlib's context has stablehlo, chlo, func, sdy... registered.
    from jax._src.interpreters import mlir as jax_mlir
    from jaxlib.mlir import ir

    context = jax_mlir.make_ir_context()
    context.allow_unregistered_dialects = True
    with context:
        module = ir.Module.parse(text)
        return module.operation.get_asm(print_generic_op_form=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="StableHLO .mlir (pretty form), - for stdin")
    parser.add_argument("-o", "--output", default="-",
                        help="where to write the generic form (default stdout)")
    args = parser.parse_args()
    try:
        import jax  # noqa: F401
    except ImportError:
        sys.exit("stablehlo_to_generic.py: needs jax (pip install jax)")
    try:
        text = (sys.stdin.read() if args.input == "-"
                else open(args.input, encoding="utf-8").read())
    except OSError as error:
        sys.exit(f"stablehlo_to_generic.py: {error}")
    try:
        generic = to_generic(text)
    except Exception as error:  # the bindings raise MLIRError with the location
        sys.exit(f"stablehlo_to_generic.py: {args.input}: {error}")
    if args.output == "-":
        sys.stdout.write(generic)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(generic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
