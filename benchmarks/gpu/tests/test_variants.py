"""attention_variants.py and bench_variants.py: the tensor-core key pass
(key-product=mma) and value pass (value-product=mma) variants, and those
with split-blocks, l2-prefetch or key-stages, get modules of their own,
the module index names each module's options (the build script passes
them to kvc-gpu-pipeline) and the manifest marks the variants."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import attention_variants as av  # noqa: E402
import bench_variants  # noqa: E402


def read_lines(path):
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def test_modules_are_grouped_by_key_product(tmp_path):
    variants = [av.Variant(av.K2, av.V2, 8, 4, 128),
                av.Variant(av.K2, av.V2, 8, 4, 128, key_product="mma"),
                av.Variant(av.K2, av.V2, 8, 4, 128, split=128,
                           key_product="mma")]
    assert av.write_variants(str(tmp_path), variants) == (3, 3)
    modules = read_lines(tmp_path / "modules.txt")
    assert ["variants_p64_s512.mlir", "64", "512", "fma", "fma"] in modules
    assert ["variants_p64_s512_mma.mlir", "64", "512", "mma", "fma"] in modules
    assert ["variants_p64_s128_mma.mlir", "64", "128", "mma",
            "fma"] in modules
    manifest = {fields[0]: fields for fields in
                read_lines(tmp_path / "manifest.txt")}
    plain = "k2c32_v2t32_r128_b8_h8x2_d128"
    assert "key_product=mma" not in manifest[plain]
    assert manifest[plain + "_mma"][-1] == "key_product=mma"
    text = (tmp_path / "variants_p64_s512_mma.mlir").read_text()
    assert f"func.func @{plain}_mma(" in text and f"@{plain}(" not in text


def test_check_covers_the_tensor_core_pass_where_it_applies():
    mma = [v for v in av.variants() if v.key_product == "mma"]
    # ... + 19: the key-stages variants (both passes on tensor cores), + 9
    # the value-stages ones, + 5 the combine=fused ones, + 6 the
    # mma-codes=normal ones, + 3 the masked ones.
    assert len(mma) == 32 + 21 + 3 + 4 + 19 + 9 + 5 + 6 + 3
    vmma = [v for v in av.variants() if v.value_product == "mma"]
    assert len(vmma) == 51 + 4 + 4 + 19 + 9 + 5 + 6 + 2
    # head_dim 64 or 128 and at most 8 query heads per KV head: the
    # sites the tensor-core passes take (others are a compile-time error).
    for passes in (mma, vmma):
        assert all(v.head_dim in (64, 128) and v.group <= 8 for v in passes)
        assert {v.group for v in passes} >= {1, 4, 7, 8}
    # Every value layout the CPU path has, on tensor cores.
    layouts = {spec.split(":g")[0] for v in vmma
               for spec in v.value.split(",")}
    assert layouts >= {"q2:token", "q3:token", "q4:token", "q8:token",
                       "q2:channel", "q3:channel", "q4:channel",
                       "q8:channel", "fp16", "fp8:e4m3", "fp8:e5m2"}
    names = [v.name() for v in av.variants()]
    assert len(names) == len(set(names)) == 186 + 19 + 9 + 10 + 6 + 5 + 5
    # Values in groups of the whole head (folded scales) at 2, 4 and 8
    # bits, both head dims, on tensor cores.
    whole_head = {(v.value, v.head_dim) for v in vmma
                  if v.value.endswith(f":token:g{v.head_dim}")}
    assert {bits for bits, _ in whole_head} >= {
        "q2:token:g128", "q4:token:g128", "q8:token:g128", "q2:token:g64",
        "q8:token:g64"}


def test_value_product_variants_are_named_and_grouped(tmp_path):
    variants = [av.Variant(av.K2, av.V2, 8, 4, 128, value_product="mma"),
                av.Variant(av.K2, av.V2, 8, 4, 128, key_product="mma",
                           value_product="mma"),
                av.Variant(av.K2, av.V2, 8, 4, 128, value_product="mma",
                           split_blocks=400)]
    assert av.write_variants(str(tmp_path), variants) == (3, 3)
    modules = read_lines(tmp_path / "modules.txt")
    assert ["variants_p64_s512_vmma.mlir", "64", "512", "fma",
            "mma"] in modules
    assert ["variants_p64_s512_mma_vmma.mlir", "64", "512", "mma",
            "mma"] in modules
    assert ["variants_p64_s512_sb400_vmma.mlir", "64", "512", "fma", "mma",
            "400"] in modules
    manifest = {fields[0]: fields for fields in
                read_lines(tmp_path / "manifest.txt")}
    plain = "k2c32_v2t32_r128_b8_h8x2_d128"
    assert manifest[plain + "_vmma"][-1] == "value_product=mma"
    assert manifest[plain + "_mma_vmma"][-2:] == ["key_product=mma",
                                                  "value_product=mma"]


def test_split_blocks_variants_get_modules_of_their_own(tmp_path):
    variants = [av.Variant(av.K2, av.V2, 8, 4, 128),
                av.Variant(av.K2, av.V2, 8, 4, 128, split_blocks=1024),
                av.Variant(av.K2, av.V2, 8, 4, 128, split_blocks=400,
                           key_product="mma")]
    assert av.write_variants(str(tmp_path), variants) == (3, 3)
    modules = read_lines(tmp_path / "modules.txt")
    # No sixth column: the build's SPLIT_BLOCKS applies.
    assert ["variants_p64_s512.mlir", "64", "512", "fma", "fma"] in modules
    assert ["variants_p64_s512_sb1024.mlir", "64", "512", "fma", "fma",
            "1024"] in modules
    assert ["variants_p64_s512_sb400_mma.mlir", "64", "512", "mma", "fma",
            "400"] in modules
    names = [fields[0] for fields in read_lines(tmp_path / "manifest.txt")]
    assert "k2c32_v2t32_r128_b8_h8x2_d128_sb1024" in names
    assert "k2c32_v2t32_r128_b8_h8x2_d128_sb400_mma" in names
    # The check covers them with every pass.
    blocks = [v for v in av.variants() if v.split_blocks is not None]
    assert {v.key_product for v in blocks} == {"fma", "mma"}
    assert {v.value_product for v in blocks} == {"fma", "mma"}


def test_l2_prefetch_variants_are_named_and_grouped(tmp_path):
    variants = [av.Variant(av.K2, av.V2, 8, 4, 128, key_product="mma",
                           value_product="mma", l2_prefetch="bulk"),
                av.Variant(av.K2, av.V2, 8, 4, 128, split_blocks=400,
                           l2_prefetch="lines"),
                av.Variant(av.K2, av.V2, 8, 4, 128)]
    assert av.write_variants(str(tmp_path), variants) == (3, 3)
    modules = read_lines(tmp_path / "modules.txt")
    # The l2-prefetch column is the seventh; "-" keeps the build's
    # SPLIT_BLOCKS before it.
    assert ["variants_p64_s512_mma_vmma_l2bulk.mlir", "64", "512", "mma",
            "mma", "-", "bulk"] in modules
    assert ["variants_p64_s512_sb400_l2lines.mlir", "64", "512", "fma",
            "fma", "400", "lines"] in modules
    assert ["variants_p64_s512.mlir", "64", "512", "fma", "fma"] in modules
    manifest = {fields[0]: fields for fields in
                read_lines(tmp_path / "manifest.txt")}
    plain = "k2c32_v2t32_r128_b8_h8x2_d128"
    assert manifest[plain + "_mma_vmma_l2bulk"][-1] == "l2_prefetch=bulk"
    assert manifest[plain + "_sb400_l2lines"][-1] == "l2_prefetch=lines"
    # The check: both kinds, both key and value passes, per-call splits,
    # windows and per-head encodings.
    prefetched = [v for v in av.variants() if v.l2_prefetch != "none"]
    assert {v.l2_prefetch for v in prefetched} == {"lines", "bulk"}
    assert {(v.key_product, v.value_product) for v in prefetched} >= {
        ("fma", "fma"), ("mma", "mma")}
    assert any(v.split_blocks for v in prefetched)
    assert any(v.window for v in prefetched)
    assert any("," in v.key for v in prefetched)


def test_key_stages_variants_are_named_and_grouped(tmp_path):
    variants = [av.Variant(av.K2, av.V2, 8, 4, 128, key_product="mma",
                           value_product="mma", key_stages=2),
                av.Variant(av.K2, av.V2, 8, 4, 128, key_product="mma",
                           value_product="mma", l2_prefetch="bulk",
                           key_stages=2),
                av.Variant(av.K2, av.V2, 8, 4, 128, key_product="mma",
                           value_product="mma", split_blocks=400,
                           key_stages=3),
                av.Variant(av.K2, av.V2, 8, 4, 128, key_product="mma",
                           value_product="mma")]
    assert av.write_variants(str(tmp_path), variants) == (4, 4)
    modules = read_lines(tmp_path / "modules.txt")
    # The key-stages column is the eighth; "-" and "none" keep the
    # build's SPLIT_BLOCKS and no prefetch before it; without it, 0.
    assert ["variants_p64_s512_mma_vmma_ks2.mlir", "64", "512", "mma",
            "mma", "-", "none", "2"] in modules
    assert ["variants_p64_s512_mma_vmma_l2bulk_ks2.mlir", "64", "512",
            "mma", "mma", "-", "bulk", "2"] in modules
    assert ["variants_p64_s512_sb400_mma_vmma_ks3.mlir", "64", "512",
            "mma", "mma", "400", "none", "3"] in modules
    assert ["variants_p64_s512_mma_vmma.mlir", "64", "512", "mma",
            "mma"] in modules
    manifest = {fields[0]: fields for fields in
                read_lines(tmp_path / "manifest.txt")}
    plain = "k2c32_v2t32_r128_b8_h8x2_d128"
    assert manifest[plain + "_mma_vmma_ks2"][-1] == "key_stages=2"
    assert manifest[plain + "_mma_vmma_l2bulk_ks2"][-2:] == [
        "l2_prefetch=bulk", "key_stages=2"]
    assert manifest[plain + "_sb400_mma_vmma_ks3"][-1] == "key_stages=3"
    assert not any(f.startswith("key_stages=")
                   for f in manifest[plain + "_mma_vmma"])
    text = (tmp_path / "variants_p64_s512_mma_vmma_ks2.mlir").read_text()
    assert f"func.func @{plain}_mma_vmma_ks2(" in text
    assert f"@{plain}_mma_vmma(" not in text


def test_check_covers_the_value_stages_where_they_apply():
    staged = [v for v in av.variants() if v.value_stages]
    assert len(staged) == 9 + 1  # + 1 with combine=fused
    # Token-axis 2-, 4- and 8-bit values with both passes on tensor cores
    # and the key stages.
    assert all(v.key_stages and (v.key_product, v.value_product) ==
               ("mma", "mma") for v in staged)
    assert {v.value.split(":")[0] for v in staged} == {"q2", "q4", "q8"}
    assert all(":token:" in v.value for v in staged)
    assert {v.value_stages for v in staged} == {2, 3}
    assert any(v.value.endswith(":g128") for v in staged)
    assert any(v.l2_prefetch == "bulk" for v in staged)
    assert any(v.split_blocks for v in staged)
    assert {v.group for v in staged} >= {1, 4, 8}


def test_check_covers_the_key_stages_where_they_apply():
    staged = [v for v in av.variants() if v.key_stages]
    # + 1 with combine=fused, + 1 with mma-codes=normal
    assert len(staged) == 19 + 9 + 1 + 1
    # Both passes on tensor cores, channel-axis 2-, 4- and 8-bit keys
    # (other sites are a compile-time error).
    assert all((v.key_product, v.value_product) == ("mma", "mma")
               for v in staged)
    assert all(spec.split(":")[0] in ("q2", "q4", "q8") and
               ":channel:" in spec
               for v in staged for spec in v.key.split(","))
    assert {spec.split(":")[0] for v in staged
            for spec in v.key.split(",")} == {"q2", "q4", "q8"}
    # K2/V2 at every GQA and head_dim, batches 1 and 8.
    k2 = {(v.group, v.head_dim) for v in staged
          if (v.key, v.value) == (av.K2, av.V2)}
    assert k2 >= {(g, d) for g in (1, 4, 7, 8) for d in (64, 128)}
    assert {v.batch for v in staged} == {1, 8}
    assert {v.key_stages for v in staged} == {2, 3}
    assert any(v.page_tokens == 128 and v.key.endswith(":g128")
               for v in staged)
    assert any(v.window and v.softcap for v in staged)
    assert any(v.split_blocks for v in staged)
    assert any(v.l2_prefetch == "bulk" for v in staged)
    assert any(v.residual != av.RESIDUAL for v in staged)
    assert any("," in v.key for v in staged)
    # 8-bit keys at both head_dims (at 128 past 48 KB of shared memory).
    assert {v.head_dim for v in staged if v.key.startswith("q8")} == {64,
                                                                      128}


def test_bench_has_a_tensor_core_twin_per_encoding_and_batch(tmp_path,
                                                            monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench_variants.py", str(tmp_path)])
    bench_variants.main()
    manifest = [fields[0] for fields in
                read_lines(tmp_path / "bench_manifest.txt")]
    mma = [name for name in manifest if name.endswith("_mma")]
    both = [name for name in manifest if name.endswith("_mma_vmma")]
    prefetched = [name for name in manifest if name.endswith("_l2bulk")]
    # Five compressed encodings x three batch sizes, each (kvc's fp16
    # reference row has no twins).
    assert len(mma) == len(both) == len(prefetched) == 15
    # The key stages: the five compressed encodings (channel-axis keys,
    # K8/V8's stages in more than 48 KB of dynamic shared memory) x three
    # batch sizes, without and with the L2 prefetch.
    staged = [name for name in manifest if name.endswith("_mma_vmma_ks2")]
    staged_prefetched = [name for name in manifest
                         if name.endswith("_mma_vmma_l2bulk_ks2_vs2")]
    assert len(staged) == len(staged_prefetched) == 15
    assert sum(name.startswith("bench_k8") for name in staged +
               staged_prefetched) == 6
    # Three stages: K2/V2 g32 and g128 x three batch sizes.
    deeper = [name for name in manifest
              if name.endswith("_mma_vmma_l2bulk_ks3_vs3")]
    assert len(deeper) == 6
    assert all(name.startswith("bench_k2c") for name in deeper)
    assert len(manifest) == 63 + 36 + 15 + 9
    assert all(name[:-len("_mma")] in manifest for name in mma)
    assert all(name[:-len("_vmma")] in manifest for name in both)
    assert all(name[:-len("_l2bulk")] in manifest for name in prefetched)
    assert all(name[:-len("_ks2")] in manifest for name in staged)
    assert all(name[:-len("_ks2_vs2")] in manifest
               for name in staged_prefetched)
    # Both tensor-core passes with combine=fused: every encoding and batch.
    fused = [name for name in manifest if name.endswith("_mma_vmma_fused")]
    assert len(fused) == 15
    assert all(name[:-len("_fused")] in manifest for name in fused)
    modules = read_lines(tmp_path / "bench_modules.txt")
    assert ["bench_p64_s512_mma_vmma_l2bulk.mlir", "64", "512", "mma", "mma",
            "-", "bulk"] in modules
    assert ["bench_p64_s512_mma_vmma_ks2.mlir", "64", "512", "mma", "mma",
            "-", "none", "2"] in modules
    assert ["bench_p128_s512_mma_vmma_l2bulk_ks2_vs2.mlir", "128", "512",
            "mma", "mma", "-", "bulk", "2", "2"] in modules
    fields = {f[0]: f for f in read_lines(tmp_path / "bench_manifest.txt")}
    assert fields["bench_k2c32_v2t32_r128_b8_h32x8_d128_mma_vmma_ks2"][
        -1] == "key_stages=2"
    # Each twin's module holds its append twin too.
    text = (tmp_path / "bench_p64_s512_mma.mlir").read_text()
    assert "func.func @bench_append_k2c32_v2t32_r128_b8_h32x8_d128_mma(" in text


def test_check_covers_the_fused_combine(tmp_path):
    fused = [v for v in av.variants() if v.combine == "fused"]
    assert len(fused) == 11 + 1 + 1  # + 1 with a mask, + 1 at head_dim 96
    # Both passes on CUDA cores and on tensor cores, every batch size, GQA
    # 1 to 8, many per-call splits at batch 1, a window (empty splits),
    # per-head encodings (several split kernels, one counter array),
    # whole-head value groups, the stages with the prefetch, and GQA 7 and
    # 8 at head_dim 128 on tensor cores.
    assert {(v.key_product, v.value_product) for v in fused} == {
        ("fma", "fma"), ("mma", "mma")}
    assert {v.batch for v in fused} == {1, 8, 32}
    assert {v.group for v in fused} >= {1, 4, 8}
    assert any(v.batch == 1 and v.split_blocks == 1024 for v in fused)
    assert any(v.window for v in fused)
    assert any("," in v.key for v in fused)
    assert any(v.value.endswith(":g128") for v in fused)
    assert any(v.key_stages and v.value_stages and v.l2_prefetch == "bulk"
               for v in fused)
    assert {v.group for v in fused if v.key_product == "mma" and
            v.head_dim == 128} >= {7, 8}
    assert av.write_variants(str(tmp_path), fused)[0] == 13
    modules = read_lines(tmp_path / "modules.txt")
    assert ["variants_p64_s512_fused.mlir", "64", "512", "fma", "fma", "-",
            "none", "0", "0", "fused"] in modules
    assert ["variants_p64_s512_sb1024_fused.mlir", "64", "512", "fma", "fma",
            "1024", "none", "0", "0", "fused"] in modules
    manifest = {f[0]: f for f in read_lines(tmp_path / "manifest.txt")}
    assert manifest["k2c32_v2t32_r128_b8_h16x4_d128_fused"][-1] == \
        "combine=fused"
    assert all("combine=fused" in f for f in manifest.values())


def test_bench_split_tokens_option(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench_variants.py", str(tmp_path),
                                      "--split-tokens", "128"])
    bench_variants.main()
    modules = read_lines(tmp_path / "bench_modules.txt")
    assert {fields[2] for fields in modules} == {"128"}
    manifest = [fields[0] for fields in
                read_lines(tmp_path / "bench_manifest.txt")]
    assert len(manifest) == 63 + 36 + 15 + 9
    assert "bench_kf16_vf16_r128_b1_h32x8_d128_s128" in manifest
    assert ("bench_k2c32_v2t32_r128_b1_h32x8_d128_s128_mma_vmma_ks2"
            in manifest)


def test_bench_keeps_the_key_stages_at_long_splits(tmp_path, monkeypatch):
    # The stages are dynamic shared memory, beside at most 48 KB of the
    # split's own: at 2048 tokens a split they still apply.
    monkeypatch.setattr(sys, "argv", ["bench_variants.py", str(tmp_path),
                                      "--split-tokens", "2048"])
    bench_variants.main()
    manifest = [fields[0] for fields in
                read_lines(tmp_path / "bench_manifest.txt")]
    assert len(manifest) == 63 + 36 + 15 + 9
    assert sum("_ks2" in name for name in manifest) == 30
    assert sum(name.endswith("_fused") for name in manifest) == 15


def test_bench_split_tokens_must_be_a_multiple_of_128(tmp_path, monkeypatch,
                                                      capsys):
    monkeypatch.setattr(sys, "argv", ["bench_variants.py", str(tmp_path),
                                      "--split-tokens", "96"])
    try:
        bench_variants.main()
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("--split-tokens 96 was accepted")
    assert "multiple of 128" in capsys.readouterr().err
    assert not (tmp_path / "bench_manifest.txt").exists()


def test_normal_code_reads_are_named_grouped_and_indexed(tmp_path):
    normal = [v for v in av.variants() if v.mma_codes == "normal"]
    # The folded reads the option changes: channel-axis 2-, 4- and 8-bit
    # keys and whole-head value groups at 2 and 8 bits, always with both
    # tensor-core passes (mma-codes needs one), stages and the fused
    # combine once each.
    assert len(normal) == 6
    assert all((v.key_product, v.value_product) == ("mma", "mma")
               for v in normal)
    assert {v.key.split(":")[0] for v in normal} == {"q2", "q4", "q8"}
    assert all(":channel:" in v.key for v in normal)
    whole_head = {v.value.split(":")[0] for v in normal
                  if v.value.endswith(f":token:g{v.head_dim}")}
    assert whole_head >= {"q2", "q8"}
    assert any(v.key_stages for v in normal)
    assert any(v.combine == "fused" for v in normal)
    assert all(v.name().endswith("_normal") for v in normal)
    assert av.write_variants(str(tmp_path), normal)[0] == 6
    modules = read_lines(tmp_path / "modules.txt")
    # The mma_codes column comes last, after every other (defaults
    # written out).
    assert ["variants_p64_s512_mma_vmma_normal.mlir", "64", "512", "mma",
            "mma", "-", "none", "0", "0", "kernel", "normal"] in modules
    assert ["variants_p128_s512_mma_vmma_fused_normal.mlir", "128", "512",
            "mma", "mma", "-", "none", "0", "0", "fused",
            "normal"] in modules
    assert all(m[-1] == "normal" for m in modules)
    manifest = {f[0]: f for f in read_lines(tmp_path / "manifest.txt")}
    assert manifest["k2c32_v2t32_r128_b8_h16x4_d128_mma_vmma_normal"][-1] \
        == "mma_codes=normal"


def test_bench_has_normal_code_twins_of_the_speedup_targets(tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench_variants.py", str(tmp_path)])
    bench_variants.main()
    manifest = [fields[0] for fields in
                read_lines(tmp_path / "bench_manifest.txt")]
    normal = [name for name in manifest if name.endswith("_normal")]
    assert len(normal) == 9
    assert all(name[:-len("_normal")] in manifest for name in normal)
    assert "bench_k2c32_v2t32_r128_b32_h32x8_d128_mma_vmma_normal" in normal


def test_masked_variants_take_the_mask_and_are_marked(tmp_path):
    variants = [av.Variant(av.K2, av.V2, 8, 4, 128, mask="f32"),
                av.Variant(av.K2, av.V2, 1, 4, 64, mask="f16:heads",
                           key_product="mma")]
    assert av.write_variants(str(tmp_path), variants) == (2, 2)
    manifest = {fields[0]: fields for fields in
                read_lines(tmp_path / "manifest.txt")}
    shared = "k2c32_v2t32_r128_b8_h8x2_d128_m32"
    per_head = "k2c32_v2t32_r128_b1_h8x2_d64_mma_m16h"
    assert manifest[shared][-1] == "mask=f32"
    assert manifest[per_head][-2:] == ["key_product=mma", "mask=f16:heads"]
    # The mask is the function's third argument and kvc.attend's operand:
    # one row for every query head, or a row a query head.
    text = (tmp_path / "variants_p64_s512.mlir").read_text()
    assert (f"@{shared}(%cache: !kvc.cache<8x2x?x128xf16, " in text and
            "%mask: tensor<8x1x1x?xf32>) -> tensor<8x8x1x128xf32>" in text)
    assert "kvc.attend %q, %cache mask(%mask : tensor<8x1x1x?xf32>) :" in text
    text = (tmp_path / "variants_p64_s512_mma.mlir").read_text()
    assert "mask(%mask : tensor<1x8x1x?xf16>)" in text
    # The check: both dtypes, both row layouts, both passes, the fused
    # combine, per-call splits, a window.
    masked = [v for v in av.variants() if v.mask]
    assert {v.mask for v in masked} == {"f32", "f16", "f32:heads",
                                       "f16:heads"}
    assert {v.key_product for v in masked} == {"fma", "mma"}
    assert {v.value_product for v in masked} == {"fma", "mma"}
    assert any(v.combine == "fused" for v in masked)
    assert any(v.split_blocks for v in masked)
    assert any(v.window for v in masked)
    assert {v.batch for v in masked} == {1, 8, 32}


def test_check_covers_head_dims_that_leave_a_warp_out():
    # The CUDA-core value pass's spans fill a 128-thread block at head_dim
    # 64 and 128, not at 96 or 192.
    dims = {v.head_dim for v in av.variants()}
    assert dims == {64, 96, 128, 192}
    odd = [v for v in av.variants() if v.head_dim in (96, 192)]
    assert all((v.key_product, v.value_product) == ("fma", "fma")
               for v in odd)
    assert {v.batch for v in odd} == {1, 8, 32}
    assert {v.group for v in odd} >= {1, 4, 8}
    assert any(v.combine == "fused" for v in odd)
    assert any(v.split_blocks for v in odd)
