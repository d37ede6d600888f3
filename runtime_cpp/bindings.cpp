// dydca._runtime: loads a dydca-built shared library and runs it on numpy arrays.
// Inputs are passed without copies when C-contiguous; the GIL is released while the model runs.
#include <dlfcn.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "dydca/api.h"

namespace py = pybind11;

namespace {

// ONNX TensorProto element types -> numpy dtypes.
py::dtype onnx_dtype(int t) {
  switch (t) {
    case 1: return py::dtype::of<float>();
    case 2: return py::dtype::of<uint8_t>();
    case 6: return py::dtype::of<int32_t>();
    case 7: return py::dtype::of<int64_t>();
    case 9: return py::dtype::of<bool>();
  }
  throw std::runtime_error("unsupported element type " + std::to_string(t));
}

class Model {
 public:
  explicit Model(const std::string& path) : path_(path) {
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) throw std::runtime_error(std::string("cannot load ") + path + ": " + dlerror());
    auto get = reinterpret_cast<const dydca_api* (*)()>(dlsym(handle_, "dydca_get_api"));
    if (!get) { dlclose(handle_); throw std::runtime_error(path + " is not a dydca library (no dydca_get_api)"); }
    api_ = get();
    if (api_->abi_version != DYDCA_ABI_VERSION) {
      dlclose(handle_);
      throw std::runtime_error(path + " was built for dydca ABI " + std::to_string(api_->abi_version) +
                               ", this runtime speaks " + std::to_string(DYDCA_ABI_VERSION));
    }
    model_ = api_->create();
    // create() fails only when the arena cannot be allocated: Python sees MemoryError, and
    // dydca.Model says how big the arena is and which dim ranges sized it
    if (!model_) { dlclose(handle_); throw std::bad_alloc(); }
  }
  ~Model() {
    if (model_) api_->destroy(model_);
    if (handle_) dlclose(handle_);
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  py::list run(const std::vector<py::array>& inputs) {
    const int nin = api_->num_inputs, nout = api_->num_outputs;
    if (int(inputs.size()) != nin)
      throw py::value_error("the model takes " + std::to_string(nin) + " inputs, got " + std::to_string(inputs.size()));
    std::vector<py::array> keep(nin);
    std::vector<const void*> ptrs(nin);
    std::vector<std::vector<int64_t>> shapes(nin);
    std::vector<const int64_t*> shape_ptrs(nin);
    for (int i = 0; i < nin; ++i) {
      const std::string name = api_->input_names[i];
      py::dtype want = onnx_dtype(api_->input_dtypes[i]);
      if (!inputs[i].dtype().equal(want))
        throw py::value_error("input '" + name + "' must be " + py::str(want).cast<std::string>() + ", got " +
                              py::str(inputs[i].dtype()).cast<std::string>());
      if (inputs[i].ndim() != api_->input_ranks[i])
        throw py::value_error("input '" + name + "' must have rank " + std::to_string(api_->input_ranks[i]) +
                              ", got " + std::to_string(inputs[i].ndim()));
      // contiguous arrays are used in place; others are copied once into a contiguous array
      keep[i] = py::array::ensure(inputs[i], py::array::c_style);
      ptrs[i] = keep[i].data();
      shapes[i].assign(keep[i].shape(), keep[i].shape() + keep[i].ndim());
      if (shapes[i].empty()) shapes[i].push_back(1);
      shape_ptrs[i] = shapes[i].data();
    }
    std::vector<std::vector<int64_t>> oshapes(nout);
    std::vector<int64_t*> oshape_ptrs(nout);
    for (int j = 0; j < nout; ++j) {
      oshapes[j].assign(std::max(api_->output_ranks[j], 1), 0);
      oshape_ptrs[j] = oshapes[j].data();
    }
    check(api_->output_shapes(model_, shape_ptrs.data(), oshape_ptrs.data()));
    std::vector<py::array> outs(nout);
    std::vector<void*> optrs(nout);
    for (int j = 0; j < nout; ++j) {
      std::vector<py::ssize_t> s(oshapes[j].begin(), oshapes[j].begin() + api_->output_ranks[j]);
      outs[j] = py::array(onnx_dtype(api_->output_dtypes[j]), s);
      optrs[j] = outs[j].mutable_data();
    }
    int rc;
    {
      py::gil_scoped_release nogil;
      rc = api_->run(model_, ptrs.data(), shape_ptrs.data(), optrs.data());
    }
    check(rc);
    if (api_->num_runtime_dims > 0) trim(outs, oshapes, oshape_ptrs);
    py::list result;
    for (auto& o : outs) result.append(o);
    return result;
  }

  void set_threads(int n) { api_->set_threads(model_, n); }
  void set_profiling(bool on) { api_->set_profiling(model_, on ? 1 : 0); }

  // (profiled runs, [(kernel name, parent kernel index or -1, seconds summed over those runs)])
  py::tuple profile() const {
    std::vector<double> seconds(std::max(api_->num_kernels, 1));
    int64_t runs = api_->profile(model_, seconds.data());
    py::list rows;
    for (int k = 0; k < api_->num_kernels; ++k)
      rows.append(py::make_tuple(api_->kernel_names[k], api_->kernel_parents[k], seconds[k]));
    return py::make_tuple(runs, rows);
  }
  int threads() const { return api_->get_threads(model_); }

  py::list io(bool inputs) const {
    py::list out;
    int n = inputs ? api_->num_inputs : api_->num_outputs;
    for (int i = 0; i < n; ++i) {
      py::dict d;
      d["name"] = inputs ? api_->input_names[i] : api_->output_names[i];
      d["dtype"] = onnx_dtype(inputs ? api_->input_dtypes[i] : api_->output_dtypes[i]);
      int rank = inputs ? api_->input_ranks[i] : api_->output_ranks[i];
      d["rank"] = rank;
      if (inputs) {
        py::list ranges;
        for (int k = 0; k < rank; ++k) ranges.append(py::make_tuple(api_->input_dim_min[i][k], api_->input_dim_max[i][k]));
        d["ranges"] = ranges;
      }
      out.append(d);
    }
    return out;
  }

  std::string name() const { return api_->name; }
  uint64_t arena_bytes() const { return api_->arena_bytes; }
  const std::string& path() const { return path_; }

 private:
  // Outputs with execution-determined dims were allocated at their bounds; each is returned as a
  // view of its buffer's start with the shape the run produced (no copy).
  void trim(std::vector<py::array>& outs, std::vector<std::vector<int64_t>>& oshapes,
            std::vector<int64_t*>& oshape_ptrs) {
    check(api_->result_shapes(model_, oshape_ptrs.data()));
    for (size_t j = 0; j < outs.size(); ++j) {
      std::vector<py::ssize_t> s(oshapes[j].begin(), oshapes[j].begin() + api_->output_ranks[j]);
      if (std::equal(s.begin(), s.end(), outs[j].shape())) continue;
      outs[j] = py::array(outs[j].dtype(), s, outs[j].mutable_data(), outs[j]);
    }
  }

  void check(int rc) {
    if (rc == DYDCA_OK) return;
    std::string msg = api_->last_error(model_);
    if (rc == DYDCA_INVALID_INPUT) throw py::value_error(msg);
    throw std::runtime_error(msg);
  }

  std::string path_;
  void* handle_ = nullptr;
  const dydca_api* api_ = nullptr;
  void* model_ = nullptr;
};

}  // namespace

PYBIND11_MODULE(_runtime, m) {
  m.doc() = "Runs dydca-built model libraries on numpy arrays.";
  m.attr("ABI_VERSION") = DYDCA_ABI_VERSION;
  py::class_<Model>(m, "Library")
      .def(py::init<const std::string&>(), py::arg("path"))
      .def("run", &Model::run, py::arg("inputs"), "Runs on a list of arrays in input order; returns the outputs.")
      .def("set_threads", &Model::set_threads, py::arg("threads"))
      .def("set_profiling", &Model::set_profiling, py::arg("on"), "Times each kernel of later runs (resets the counters).")
      .def("profile", &Model::profile, "(profiled runs, [(kernel, seconds)]) since set_profiling(True).")
      .def_property_readonly("threads", &Model::threads)
      .def_property_readonly("inputs", [](const Model& s) { return s.io(true); })
      .def_property_readonly("outputs", [](const Model& s) { return s.io(false); })
      .def_property_readonly("name", &Model::name)
      .def_property_readonly("arena_bytes", &Model::arena_bytes)
      .def_property_readonly("path", &Model::path);
}
