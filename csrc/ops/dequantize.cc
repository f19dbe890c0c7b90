#include "csrc/ops/dequantize.h"

#include "csrc/cpu/quant.h"
#include "csrc/ops/common.h"

namespace gemmacpp::ops {

cpu::QType check_quantized(const char* op, const TensorView& data, const std::string& qtype,
                           int64_t n, int64_t k, const TensorView** dense_data, Tensor& keep) {
  cpu::QType t;
  GC_CHECK(cpu::parse_qtype(qtype, &t), ValueError, op, ": qtype '", qtype,
           "' is not a supported quantized type; supported: ", cpu::supported_qtypes());
  GC_CHECK(data.dtype == DType::kU8, TypeError, op, ": data must be a uint8 array of raw ",
           qtype, " blocks, got ", dtype_name(data.dtype));
  GC_CHECK(data.device.is_cpu(), NotImplementedError, op, ": data is on ", data.device.str(),
           "; quantized weights are only supported on the CPU");
  GC_CHECK(n >= 0 && k >= 0, ValueError, op, ": shape (n, k) must be non-negative, got (", n, ", ",
           k, ")");
  const cpu::QTypeInfo info = cpu::qtype_info(t);
  GC_CHECK(k % info.block_values == 0, ValueError, op, ": K = ", k, " is not a multiple of ",
           qtype, "'s block size ", info.block_values);
  const int64_t expected = checked_mul(checked_mul(n, k / info.block_values, op), info.block_bytes, op);
  GC_CHECK(data.numel() == expected, ValueError, op, ": data has ", data.numel(),
           " bytes but a [", n, ", ", k, "] ", qtype, " matrix needs ", expected, " (", n,
           " rows x ", k / info.block_values, " blocks x ", info.block_bytes, " bytes)");
  *dense_data = &dense(data, keep);
  return t;
}

Tensor dequantize(const TensorView& data, const std::string& qtype, int64_t n, int64_t k) {
  Tensor keep;
  const TensorView* d = nullptr;
  const cpu::QType t = check_quantized("dequantize", data, qtype, n, k, &d, keep);
  Output y("dequantize", nullptr, DType::kF32, {n, k}, data.device);
  if (n > 0 && k > 0) cpu::dequantize(t, d->ptr<const uint8_t>(), n, k, y.view().ptr<float>());
  return y.finish();
}

}  // namespace gemmacpp::ops
