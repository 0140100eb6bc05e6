// RUN: kvc-opt %s -split-input-file -verify-diagnostics

// Every verifier rule of the kvc dialect, each named in its message.

// -----
// expected-error @+2 {{quantization bits must be 2, 3, 4 or 8 (got 5)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'key'}}
func.func private @bits(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 5, axis = token, group = 32>, value = #kvc.plain, residual = 0>>)

// -----
// expected-error @+2 {{quantization group must be a positive multiple of 32, the packing unit (got 48)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'key'}}
func.func private @group(!kvc.cache<1x2x?x96xf16, #kvc.encoding<key = #kvc.quant<bits = 4, axis = token, group = 48>, value = #kvc.plain, residual = 0>>)

// -----
// expected-error @+1 {{residual 100 must be a positive multiple of the key group 32 (channel-axis groups run along tokens)}}
func.func private @residual(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.plain, residual = 100>>)

// -----
// expected-error @+1 {{residual 0 must be a positive multiple of the key group 64}}
func.func private @residual_zero(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 64>, value = #kvc.plain, residual = 0>>)

// -----
// expected-error @+1 {{residual 64 must be a positive multiple of the value group 128}}
func.func private @residual_value(!kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.quant<bits = 2, axis = channel, group = 128>, residual = 64>>)

// -----
// expected-error @+1 {{value encoding: token-axis group 128 must divide the value dimension 64}}
func.func private @token_group(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.quant<bits = 2, axis = token, group = 128>, residual = 0>>)

// -----
// Pruned keys are quantized in their pruned dimension.
// expected-error @+1 {{key encoding: token-axis group 32 must divide the key dimension 48}}
func.func private @pruned_group(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = token, group = 32>, value = #kvc.plain, residual = 0, key_reduce = #kvc.prune<keep = 48>>>)

// -----
// expected-error @+1 {{key reduction must keep fewer than head_dim (64) dimensions, got 64}}
func.func private @prune_all(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, key_reduce = #kvc.prune<keep = 64>>>)

// -----
// expected-error @+1 {{value reduction must keep fewer than head_dim (64) dimensions, got 96}}
func.func private @rank_too_big(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, value_reduce = #kvc.lowrank<rank = 96>>>)

// -----
// expected-error @+2 {{prune must keep at least one channel}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'key_reduce'}}
func.func private @prune_zero(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, key_reduce = #kvc.prune<keep = 0>>>)

// -----
// expected-error @+2 {{low-rank projection needs a rank of at least 1}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'key_reduce'}}
func.func private @rank_zero(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, key_reduce = #kvc.lowrank<rank = 0>>>)

// -----
// expected-error @+1 {{key_reduce must be #kvc.prune or #kvc.lowrank}}
func.func private @key_reduce_kind(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, key_reduce = #kvc.plain>>)

// -----
// expected-error @+1 {{value_reduce must be #kvc.lowrank: value channels cannot be pruned}}
func.func private @value_prune(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, value_reduce = #kvc.prune<keep = 32>>>)

// -----
// expected-error @+2 {{eviction budget must be at least 1 token}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @budget(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 0, window = 0, budget = 0>>>)

// -----
// expected-error @+2 {{eviction sink (4) + window (64) must not exceed the budget (32)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @sink_window(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 64, budget = 32>>>)

// -----
// expected-error @+2 {{streaming eviction keeps exactly sink + window tokens: budget must equal 68, got 128}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @streaming(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = streaming, sink = 4, window = 64, budget = 128>>>)

// -----
// expected-error @+2 {{invalid kind of attribute specified}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'key'}}
func.func private @not_a_side_encoding(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = 3 : i32, value = #kvc.plain, residual = 0>>)

// -----
// expected-error @+1 {{cache shape must be batch x kv_heads x capacity x head_dim (4 dims), got 3 dims}}
func.func private @rank(!kvc.cache<2x?x64xf16>)

// -----
// expected-error @+1 {{cache dims must be positive, got 0}}
func.func private @zero_dim(!kvc.cache<1x0x?x64xf16>)

// -----
// expected-error @+1 {{cache kv_heads and head_dim must be static}}
func.func private @dynamic_heads(!kvc.cache<1x?x?x64xf16>)

// -----
// expected-error @+1 {{cache storage element type must be f16, bf16 or f32, got 'i8'}}
func.func private @element_type(!kvc.cache<1x2x?x64xi8>)

// -----
func.func @empty_missing_batch() {
  // expected-error @+1 {{'kvc.cache.empty' op expects 1 dynamic size operand (for the dynamic batch), got 0}}
  %c = kvc.cache.empty() : !kvc.cache<?x2x?x64xf16>
  return
}

// -----
func.func @empty_extra_operand(%n: index) {
  // expected-error @+1 {{'kvc.cache.empty' op expects 0 dynamic size operand, got 1}}
  %c = kvc.cache.empty(%n) : !kvc.cache<1x2x?x64xf16>
  return
}

// -----
func.func @append_rank(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<2x1x64xf32>) {
  // expected-error @+1 {{'kvc.append' op keys must be batch x heads x tokens x head_dim (rank 4), got rank 3}}
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<2x1x64xf32>, tensor<2x1x64xf32>
  return
}

// -----
func.func @append_batch(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<2x2x1x64xf32>) {
  // expected-error @+1 {{'kvc.append' op keys batch 2 does not match the cache batch 1}}
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  return
}

// -----
func.func @append_head_dim(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x128xf32>) {
  // expected-error @+1 {{'kvc.append' op keys head_dim 128 does not match the cache head_dim 64}}
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x128xf32>, tensor<1x2x1x128xf32>
  return
}

// -----
func.func @append_heads(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>, %v: tensor<1x4x1x64xf32>) {
  // expected-error @+1 {{'kvc.append' op values have 4 heads but the cache has 2 KV heads}}
  %c1 = kvc.append %c, %k, %v : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x4x1x64xf32>
  return
}

// -----
func.func @append_kv_shapes(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x3x64xf32>) {
  // expected-error @+1 {{'kvc.append' op keys and values must have the same shape}}
  %c1 = kvc.append %c, %k, %v : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x3x64xf32>
  return
}

// -----
func.func @append_capacity(%c: !kvc.cache<1x2x16x64xf16>, %k: tensor<1x2x17x64xf32>) {
  // expected-error @+1 {{'kvc.append' op appends 17 tokens to a cache of capacity 16}}
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x16x64xf16>, tensor<1x2x17x64xf32>, tensor<1x2x17x64xf32>
  return
}

// -----
func.func @append_twice(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>) {
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  // expected-error @+1 {{'kvc.append' op updates a cache value that 'kvc.append' already updated; a cache is consumed by one update (use kvc.fork to update a shared prefix twice)}}
  %c2 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  return
}

// -----
func.func @append_type(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xi32>) {
  // expected-error @+1 {{'kvc.append' op operand #1 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values}}
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xi32>, tensor<1x2x1x64xi32>
  return
}

// -----
func.func @attend_gqa(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x6x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op query heads (6) must be a multiple of the cache's KV heads (4) for grouped-query attention}}
  %o = kvc.attend %q, %c : tensor<1x6x1x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x6x1x64xf32>
  return
}

// -----
func.func @attend_rank(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<4x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op query must be batch x heads x tokens x head_dim (rank 4), got rank 3}}
  %o = kvc.attend %q, %c : tensor<4x1x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<4x1x64xf32>
  return
}

// -----
func.func @attend_head_dim(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x4x1x128xf32>) {
  // expected-error @+1 {{'kvc.attend' op query head_dim 128 does not match the cache head_dim 64}}
  %o = kvc.attend %q, %c : tensor<1x4x1x128xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x4x1x128xf32>
  return
}

// -----
func.func @attend_q_len(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x4x0x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op q_len must be at least 1}}
  %o = kvc.attend %q, %c : tensor<1x4x0x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x4x0x64xf32>
  return
}

// -----
func.func @attend_capacity(%c: !kvc.cache<1x4x8x64xf16>, %q: tensor<1x4x9x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op q_len 9 exceeds the cache capacity 8}}
  %o = kvc.attend %q, %c : tensor<1x4x9x64xf32>, !kvc.cache<1x4x8x64xf16> -> tensor<1x4x9x64xf32>
  return
}

// -----
func.func @attend_result(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x4x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op result shape must equal the query shape 'tensor<1x4x1x64xf32>'}}
  %o = kvc.attend %q, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x4x2x64xf32>
  return
}

// -----
func.func @attend_scale(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x4x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op scale must be positive and finite, got -1}}
  %o = kvc.attend %q, %c {scale = -1.0 : f32} : tensor<1x4x1x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x4x1x64xf32>
  return
}

// -----
func.func @attend_softcap(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x4x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op softcap must be positive and finite, got 0}}
  %o = kvc.attend %q, %c {softcap = 0.0 : f32} : tensor<1x4x1x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x4x1x64xf32>
  return
}

// -----
func.func @attend_window(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x4x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op window must be at least 1 token, got 0}}
  %o = kvc.attend %q, %c {window = 0 : i64} : tensor<1x4x1x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x4x1x64xf32>
  return
}

// -----
func.func @evict_needs_scores(%c: !kvc.cache<1x2x?x64xf16>) {
  // expected-error @+1 {{'kvc.evict' op policy 'h2o' ranks tokens by score and needs a scores operand}}
  %c1 = kvc.evict %c with <policy = h2o, sink = 4, window = 28, budget = 64> : !kvc.cache<1x2x?x64xf16>
  return
}

// -----
func.func @evict_streaming_scores(%c: !kvc.cache<1x2x?x64xf16>, %s: tensor<1x2x?xf32>) {
  // expected-error @+1 {{'kvc.evict' op streaming eviction keeps the sink and the window and takes no scores}}
  %c1 = kvc.evict %c scores(%s : tensor<1x2x?xf32>) with <policy = streaming, sink = 4, window = 60, budget = 64> : !kvc.cache<1x2x?x64xf16>
  return
}

// -----
func.func @evict_scores_shape(%c: !kvc.cache<1x2x?x64xf16>, %s: tensor<1x4x?xf32>) {
  // expected-error @+1 {{'kvc.evict' op scores must be batch x kv_heads x tokens (1x2x?), got 'tensor<1x4x?xf32>'}}
  %c1 = kvc.evict %c scores(%s : tensor<1x4x?xf32>) with <policy = snapkv, sink = 4, window = 28, budget = 64> : !kvc.cache<1x2x?x64xf16>
  return
}

// -----
func.func @evict_after_append(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>) {
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  // expected-error @+1 {{'kvc.evict' op updates a cache value that 'kvc.append' already updated}}
  %c2 = kvc.evict %c with <policy = streaming, sink = 4, window = 60, budget = 64> : !kvc.cache<1x2x?x64xf16>
  return
}

// -----
func.func @quantize_codes_shape(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{'kvc.quantize' op codes must have shape 4x16 for this encoding (docs/layout.md), got 'tensor<4x32xi8>'}}
  %c:3 = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<4x64xf32> -> tensor<4x32xi8>, tensor<4x2xf16>, tensor<4x2xf16>
  return
}

// -----
func.func @quantize_scales_shape(%x: tensor<64x8xf32>) {
  // expected-error @+1 {{'kvc.quantize' op scales must have shape 2x8 for this encoding (docs/layout.md), got 'tensor<64x1xf16>'}}
  %c:3 = kvc.quantize %x as quant<bits = 4, axis = channel, group = 32> : tensor<64x8xf32> -> tensor<2x8x16xi8>, tensor<64x1xf16>, tensor<64x1xf16>
  return
}

// -----
func.func @quantize_fp8_zeros(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{'kvc.quantize' op fp8 encodings have no zero points}}
  %c:3 = kvc.quantize %x as fp8<e5m2> : tensor<4x64xf32> -> tensor<4x64xi8>, tensor<4xf16>, tensor<4xf16>
  return
}

// -----
func.func @quantize_missing_zeros(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{'kvc.quantize' op integer quantization needs zero points}}
  %c:2 = kvc.quantize %x as quant<bits = 8, axis = token, group = 64> : tensor<4x64xf32> -> tensor<4x64xi8>, tensor<4x1xf16>
  return
}

// -----
func.func @quantize_channel_tokens(%x: tensor<48x8xf32>) {
  // expected-error @+1 {{'kvc.quantize' op channel-axis group (32) must divide the token count (48)}}
  %c:3 = kvc.quantize %x as quant<bits = 2, axis = channel, group = 32> : tensor<48x8xf32> -> tensor<1x8x8xi8>, tensor<1x8xf16>, tensor<1x8xf16>
  return
}

// -----
func.func @quantize_token_group(%x: tensor<4x80xf32>) {
  // expected-error @+1 {{'kvc.quantize' op token-axis group (32) must divide the channel count (80)}}
  %c:3 = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<4x80xf32> -> tensor<4x20xi8>, tensor<4x2xf16>, tensor<4x2xf16>
  return
}

// -----
func.func @quantize_rank(%x: tensor<64xf32>) {
  // expected-error @+1 {{'kvc.quantize' op expects a tensor of ... x tokens x channels (rank >= 2), got rank 1}}
  %c:3 = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<64xf32> -> tensor<16xi8>, tensor<2xf16>, tensor<2xf16>
  return
}

// -----
func.func @quantize_dynamic_channels(%x: tensor<4x?xf32>) {
  // expected-error @+1 {{'kvc.quantize' op the channel dimension must be static}}
  %c:3 = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<4x?xf32> -> tensor<4x?xi8>, tensor<4x?xf16>, tensor<4x?xf16>
  return
}

// -----
func.func @quantize_plain(%x: tensor<4x64xf32>) {
  // expected-error @+1 {{expected 'quant<...>' or 'fp8<...>', got 'plain'}}
  %c:3 = kvc.quantize %x as plain : tensor<4x64xf32> -> tensor<4x16xi8>, tensor<4x2xf16>, tensor<4x2xf16>
  return
}

// -----
func.func @dequantize_result_shape(%c: tensor<4x16xi8>, %s: tensor<4x2xf16>) {
  // expected-error @+1 {{'kvc.dequantize' op codes must have shape 4x32 for this encoding (docs/layout.md), got 'tensor<4x16xi8>'}}
  %x = kvc.dequantize %c, %s, %s as quant<bits = 4, axis = token, group = 32> : tensor<4x16xi8>, tensor<4x2xf16>, tensor<4x2xf16> -> tensor<4x64xf32>
  return
}

// -----
func.func @attend_mask(%c: !kvc.cache<2x2x?x64xf16>, %q: tensor<2x8x1x64xf32>, %m: tensor<2x4x1x?xf32>) {
  // expected-error @+1 {{'kvc.attend' op mask must be batch x (1 | q_heads) x q_len x tokens, got 'tensor<2x4x1x?xf32>'}}
  %o = kvc.attend %q, %c mask(%m : tensor<2x4x1x?xf32>) : tensor<2x8x1x64xf32>, !kvc.cache<2x2x?x64xf16> -> tensor<2x8x1x64xf32>
  return
}

// -----
// expected-error @+1 {{evict must be a #kvc.evict policy}}
func.func private @evict_kind(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.prune<keep = 4>>>)

// -----
// Per-KV-head encodings: one per head, each with the type's residual window.
// expected-error @+1 {{'func.func' op argument 0: 'kvc.head_encodings' has 1 entries for a cache with 2 KV heads}}
func.func private @head_encodings_count(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>> {kvc.head_encodings = [#kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>]})

// -----
// expected-error @+1 {{'func.func' op argument 0: 'kvc.head_encodings' entry 1 has residual 32 but the cache type has 64 (the residual window is per layer)}}
func.func @head_encodings_residual(%c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>> {kvc.head_encodings = [#kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 32>]}) {
  return
}

// -----
// expected-error @+1 {{'func.func' op argument 0: 'kvc.head_encodings' applies to a !kvc.cache, not 'tensor<4xf32>'}}
func.func private @head_encodings_not_cache(tensor<4xf32> {kvc.head_encodings = []})

// -----
// expected-error @+1 {{'func.func' op argument 0: 'kvc.head_encodings' needs a cache type with an encoding}}
func.func private @head_encodings_plain_type(!kvc.cache<1x1x?x64xf16> {kvc.head_encodings = [#kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0>]})

// -----
// expected-error @+1 {{'func.func' op argument 0: 'kvc.head_encodings' entry 0 is not a #kvc.encoding}}
func.func private @head_encodings_entry(!kvc.cache<1x1x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0>> {kvc.head_encodings = [1 : i64]})

// -----
func.func @head_encodings_on_op(%q: tensor<1x1x1x64xf32>) {
  // expected-error @+1 {{'arith.constant' op has 'kvc.head_encodings' but no !kvc.cache result}}
  %0 = arith.constant {kvc.head_encodings = []} dense<0.0> : tensor<1x1x1x64xf32>
  return
}

// -----
func.func @attend_mass_shape(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x8x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op mass must be batch x kv_heads x ? (1x4x?xf32: its token dimension is the longest sequence's length, known at run time), got 'tensor<1x8x?xf32>'}}
  %o, %m = kvc.attend %q, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x8x1x64xf32>, tensor<1x8x?xf32>
  return
}

// -----
func.func @attend_mass_static_tokens(%c: !kvc.cache<1x4x?x64xf16>, %q: tensor<1x8x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op mass must be batch x kv_heads x ?}}
  %o, %m = kvc.attend %q, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x4x?x64xf16> -> tensor<1x8x1x64xf32>, tensor<1x4x16xf32>
  return
}

// -----
// expected-error @+2 {{eviction window must be at least 1 token (the newest token is always kept)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @no_window(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 0, budget = 32>>>)

// -----
// Per-KV-head budgets.
// expected-error @+2 {{eviction budget (80) must be the largest per-head budget (64)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @head_budgets_max(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 80, head_budgets = [64, 32]>>>)

// -----
// expected-error @+2 {{KV head 1: eviction sink (4) + window (28) must not exceed the budget (16)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @head_budgets_small(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 16]>>>)

// -----
// expected-error @+2 {{head_budgets entry 1 (-8) is not a token count}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @head_budgets_negative(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, -8]>>>)

// -----
// expected-error @+2 {{head_budgets must name one budget per KV head}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @head_budgets_empty(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = []>>>)

// -----
// expected-error @+2 {{streaming eviction keeps sink + window tokens in every KV head: per-head budgets need a policy that ranks tokens (h2o, snapkv)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @head_budgets_streaming(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = streaming, sink = 4, window = 28, budget = 32, head_budgets = [32, 32]>>>)

// -----
// expected-error @+1 {{eviction has 3 per-head budgets for 2 KV heads}}
func.func private @head_budgets_count(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32, 32]>>>)

// -----
func.func @evict_head_budgets_count(%c: !kvc.cache<1x2x?x64xf16>, %s: tensor<1x2x?xf32>) {
  // expected-error @+1 {{'kvc.evict' op eviction has 4 per-head budgets for 2 KV heads}}
  %c1 = kvc.evict %c scores(%s : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32, 32, 32]> : !kvc.cache<1x2x?x64xf16>
  return
}

// -----
// Two-tier eviction.
// expected-error @+2 {{demote_key and demote_value go together (two-tier eviction keeps both sides of an evicted token)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @demote_one_side(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.fp8<e4m3>>>>)

// -----
// expected-error @+2 {{demote_value: quant<bits=2, axis=channel, group=32> groups tokens along the channel axis, but a demoted token is encoded alone (use fp16, fp8 or token-axis quantization)}}
// expected-error @+1 {{failed to parse KVC_EncodingAttr parameter 'evict'}}
func.func private @demote_channel(!kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.fp8<e4m3>, demote_value = #kvc.quant<bits = 2, axis = channel, group = 32>>>>)

// -----
func.func @evict_demote_mismatch(%c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64>>>, %s: tensor<1x2x?xf32>) {
  // expected-error @+1 {{'kvc.evict' op keeps evicted tokens differently (demote_key / demote_value) from the eviction its cache's encoding declares}}
  %c1 = kvc.evict %c scores(%s : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.fp8<e4m3>, demote_value = #kvc.fp8<e4m3>> : !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64>>>
  return
}
