// Gemma 3n text models (E2B, E4B): AltUp's four streams around every layer, LAuReL beside
// attention, per-layer inputs gated into the inactive streams, activation sparsity on the first
// layers' MLPs, the last layers sharing earlier layers' keys and values; q/k norms and a
// weightless v norm at attention scale 1, RMSNorms without the +1.
#pragma once

#include <memory>

#include "csrc/io/weights.h"
#include "csrc/nn/config.h"
#include "csrc/nn/text_model.h"

namespace gemmacpp::gemma3n {

// Binds every tensor the config needs (ValueError naming a missing or misshapen one). A GGUF
// file's stacked AltUp projections are read as slices of the stacked tensor, in place.
std::shared_ptr<nn::TextModel> make_model(nn::ModelConfig config, std::shared_ptr<const WeightFile> weights);

// For a MatFormer slice, before the model binds its weights: the file mappings are read page by
// page (no kernel read-around), so that the resident pages are the slice's (the skipped layers and
// the unused columns of the down matrices stay on disk). The price: a cold first forward reads
// its pages one fault at a time instead of in read-ahead batches.
void read_sparsely(const WeightFile& weights);

}  // namespace gemmacpp::gemma3n
