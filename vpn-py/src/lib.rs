//! Python binding (`vpn._vpn`, re-exported as `vpn`) for the vpn-core ESP SA.
//!
//! This crate is deliberately thin: it converts Python arguments, reads the
//! monotonic clock when the caller passes no `now_ns`, maps `EspError` onto a
//! small exception hierarchy and otherwise forwards to `vpn_core::esp::EspSa`.
//! No protocol logic lives here.
//!
//! Buffers: inputs may be any bytes-like object (`bytes` and `bytearray` are
//! read in place, anything else is copied once through `bytes(obj)`). The
//! `*_into` methods write straight into a `bytearray`; other writable buffers
//! (a `memoryview`, ...) receive a copy through slice assignment. That keeps
//! the module within the stable ABI of Python 3.9, which lacks the buffer
//! protocol.

mod bgp;
mod config;
mod connection;

use core::time::Duration;

use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PySlice, PyTuple, PyType};
use vpn_core::entropy::OsEntropy;
use vpn_core::esp::{
    EncryptionAlgorithm, EspError, EspEvent, EspKeys, EspSa as CoreSa, EspSaConfig, Framing,
    IntegrityAlgorithm, LifetimeLimit, Limits, ReplayKind,
};
use vpn_core::time::Timestamp;

// ---------------------------------------------------------------------------
// Exceptions
// ---------------------------------------------------------------------------

/// The exception classes, built once per interpreter. They are made with
/// `type(name, bases, dict)` so that `ConfigError` and `BufferTooSmallError`
/// can also be `ValueError`s.
struct Exceptions {
    base: Py<PyType>,
    config: Py<PyType>,
    buffer: Py<PyType>,
    malformed: Py<PyType>,
    authentication: Py<PyType>,
    replay: Py<PyType>,
    expired: Py<PyType>,
}

static EXCEPTIONS: GILOnceCell<Exceptions> = GILOnceCell::new();

fn new_exception_type(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: Vec<Bound<'_, PyType>>,
) -> PyResult<Py<PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__module__", "vpn")?;
    dict.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, bases)?;
    let ty = py.get_type::<PyType>().call1((name, bases, dict))?;
    Ok(ty.downcast_into::<PyType>()?.unbind())
}

fn exceptions(py: Python<'_>) -> PyResult<&Exceptions> {
    EXCEPTIONS.get_or_try_init(py, || {
        let base = new_exception_type(
            py,
            "VpnError",
            "Base class of every error raised by the vpn module.",
            vec![py.get_type::<PyException>()],
        )?;
        let sub = |name: &str, doc: &str, value_error: bool| {
            let mut bases = vec![base.bind(py).clone()];
            if value_error {
                bases.push(py.get_type::<PyValueError>());
            }
            new_exception_type(py, name, doc, bases)
        };
        Ok::<_, PyErr>(Exceptions {
            config: sub(
                "ConfigError",
                "An invalid configuration: an ESP SA's (unknown algorithm keyword, wrong \
                 key length, inconsistent settings) or a connection's (`vpn.Config`). \
                 `field` names the first offending field (or is None) and `errors` lists \
                 every problem as (field, message).",
                true,
            )?,
            buffer: sub(
                "BufferTooSmallError",
                "The output buffer is too small; `needed` says how many bytes it must hold.",
                true,
            )?,
            malformed: sub(
                "MalformedPacketError",
                "The packet is not a valid ESP packet for this SA (length, SPI, padding, \
                 next header or inner header), or the inner packet is not IPv4/IPv6.",
                false,
            )?,
            authentication: sub(
                "AuthenticationError",
                "ICV verification failed: wrong key or a corrupted/forged packet.",
                false,
            )?,
            replay: sub(
                "ReplayError",
                "Anti-replay check failed; `sequence` and `kind` ('duplicate' or \
                 'too_old') describe the packet.",
                false,
            )?,
            expired: sub(
                "SaExpiredError",
                "The SA reached a hard lifetime or exhausted its sequence numbers: rekey.",
                false,
            )?,
            base,
        })
    })
}

fn raise(py: Python<'_>, ty: &Py<PyType>, msg: String) -> PyErr {
    PyErr::from_type(ty.bind(py).clone(), msg)
}

/// Sets extra attributes on a freshly made exception; failures to do so are
/// not worth masking the original error.
fn with_attrs(py: Python<'_>, err: PyErr, attrs: &[(&str, PyObject)]) -> PyErr {
    let value = err.value(py);
    for (name, v) in attrs {
        let _ = value.setattr(*name, v);
    }
    err
}

/// Maps the core's error onto the hierarchy. Messages come from `EspError`'s
/// `Display`, which never includes key bytes.
fn esp_err(py: Python<'_>, err: EspError) -> PyErr {
    let ex = match exceptions(py) {
        Ok(ex) => ex,
        Err(e) => return e,
    };
    let msg = err.to_string();
    match err {
        EspError::UnknownAlgorithm
        | EspError::InvalidConfig(_)
        | EspError::InvalidKeyLength { .. } => config::binding_error(py, msg),
        EspError::BufferTooSmall { needed } => with_attrs(
            py,
            raise(py, &ex.buffer, msg),
            &[(
                "needed",
                needed
                    .into_pyobject(py)
                    .map_or_else(|_| py.None(), |v| v.into_any().unbind()),
            )],
        ),
        EspError::SequenceExhausted | EspError::Expired => raise(py, &ex.expired, msg),
        EspError::Replay { seq, kind } => {
            let kind = match kind {
                ReplayKind::Duplicate => "duplicate",
                ReplayKind::TooOld => "too_old",
            };
            let seq_obj = seq
                .into_pyobject(py)
                .map_or_else(|_| py.None(), |v| v.into_any().unbind());
            let kind_obj = kind
                .into_pyobject(py)
                .map_or_else(|_| py.None(), |v| v.into_any().unbind());
            with_attrs(
                py,
                raise(py, &ex.replay, msg),
                &[("sequence", seq_obj), ("kind", kind_obj)],
            )
        }
        EspError::Authentication => raise(py, &ex.authentication, msg),
        EspError::UnsupportedInnerPacket
        | EspError::WrongSpi { .. }
        | EspError::InvalidPadding
        | EspError::Malformed(_)
        | EspError::NotEsp(_) => raise(py, &ex.malformed, msg),
    }
}

fn config_err(py: Python<'_>, msg: &str) -> PyErr {
    config::binding_error(py, msg.to_owned())
}

// ---------------------------------------------------------------------------
// Clock and buffers
// ---------------------------------------------------------------------------

static MONOTONIC_NS: GILOnceCell<PyObject> = GILOnceCell::new();

/// `now_ns` if given, else `time.monotonic_ns()` (the binding may read a
/// clock; vpn-core never does).
fn now(py: Python<'_>, now_ns: Option<u64>) -> PyResult<Timestamp> {
    let ns = match now_ns {
        Some(ns) => ns,
        None => MONOTONIC_NS
            .get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("time")?.getattr("monotonic_ns")?.unbind())
            })?
            .call0(py)?
            .extract::<u64>(py)?,
    };
    Ok(Timestamp::from_nanos(ns))
}

/// A read-only bytes-like argument.
enum Input<'py> {
    Bytes(Bound<'py, PyBytes>),
    ByteArray(Bound<'py, PyByteArray>),
    Owned(Vec<u8>),
}

impl<'py> Input<'py> {
    fn new(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.downcast::<PyBytes>() {
            return Ok(Input::Bytes(b.clone()));
        }
        if let Ok(b) = obj.downcast::<PyByteArray>() {
            return Ok(Input::ByteArray(b.clone()));
        }
        // memoryview and other buffer exporters: one copy via bytes(obj).
        let py = obj.py();
        let bytes = py
            .get_type::<PyBytes>()
            .call1((obj,))
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "expected a bytes-like object, got {}",
                    obj.get_type()
                        .name()
                        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
                ))
            })?
            .downcast_into::<PyBytes>()?;
        Ok(Input::Owned(bytes.as_bytes().to_vec()))
    }

    /// Start and length of the data. A raw pointer rather than a slice,
    /// because a bytearray input may be the very object written as output;
    /// callers copy with `ptr::copy` (memmove) before forming a `&mut`.
    /// Valid until Python code runs again (no Python code runs in between).
    fn raw(&self) -> (*const u8, usize) {
        match self {
            Input::Bytes(b) => {
                let s = b.as_bytes();
                (s.as_ptr(), s.len())
            }
            Input::ByteArray(b) => (b.data() as *const u8, b.len()),
            Input::Owned(v) => (v.as_ptr(), v.len()),
        }
    }
}

/// A writable output argument.
enum Output<'py> {
    /// Written in place.
    ByteArray(Bound<'py, PyByteArray>),
    /// Any other writable buffer: filled by `out[0:n] = data` afterwards.
    Other(Bound<'py, PyAny>, usize),
}

impl<'py> Output<'py> {
    fn new(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.downcast::<PyByteArray>() {
            return Ok(Output::ByteArray(b.clone()));
        }
        if obj.downcast::<PyBytes>().is_ok() {
            return Err(PyTypeError::new_err(
                "output buffer must be writable (bytearray or memoryview), not bytes",
            ));
        }
        let len = obj.len().map_err(|_| {
            PyTypeError::new_err("output buffer must be a bytearray or a writable memoryview")
        })?;
        Ok(Output::Other(obj.clone(), len))
    }

    fn len(&self) -> usize {
        match self {
            Output::ByteArray(b) => b.len(),
            Output::Other(_, len) => *len,
        }
    }

    /// Runs `f` on a scratch or in-place buffer of `len` bytes whose first
    /// `input.len()` bytes at `at` hold a copy of `input`, then stores the
    /// first `written(f's result)` bytes back if they were not written in place.
    fn process<T>(
        &self,
        len: usize,
        input: (*const u8, usize),
        at: usize,
        f: impl FnOnce(&mut [u8]) -> Result<T, PyErr>,
        written: impl Fn(&T) -> usize,
    ) -> PyResult<T> {
        let (src, src_len) = input;
        debug_assert!(len <= self.len() && at + src_len <= len);
        match self {
            Output::ByteArray(b) => {
                let dst = b.data();
                // SAFETY: `dst` points at `b.len() >= len` bytes (checked by
                // the caller) owned by the bytearray, which cannot be resized
                // or freed while we hold the GIL and run no Python code.
                // `src` is valid for `src_len` bytes and may overlap `dst`
                // (same bytearray), hence `copy` (memmove), done before the
                // exclusive slice is formed.
                let buf = unsafe {
                    core::ptr::copy(src, dst.add(at), src_len);
                    core::slice::from_raw_parts_mut(dst, len)
                };
                f(buf)
            }
            Output::Other(obj, _) => {
                let mut scratch = vec![0u8; len];
                // SAFETY: `src` is valid for `src_len` bytes and cannot
                // overlap a fresh Vec.
                scratch[at..at + src_len]
                    .copy_from_slice(unsafe { core::slice::from_raw_parts(src, src_len) });
                let result = f(&mut scratch)?;
                let n = written(&result);
                let py = obj.py();
                obj.set_item(
                    PySlice::new(py, 0, n as isize, 1),
                    PyBytes::new(py, &scratch[..n]),
                )?;
                Ok(result)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The SA
// ---------------------------------------------------------------------------

fn limits(bytes: Option<u64>, packets: Option<u64>, seconds: Option<f64>) -> PyResult<Limits> {
    let time = seconds
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| PyValueError::new_err("lifetime seconds must be finite and >= 0"))
        })
        .transpose()?;
    Ok(Limits {
        bytes,
        packets,
        time,
    })
}

fn limit_name(limit: LifetimeLimit) -> &'static str {
    match limit {
        LifetimeLimit::Bytes => "bytes",
        LifetimeLimit::Packets => "packets",
        LifetimeLimit::Time => "time",
    }
}

/// One ESP security association in tunnel mode (RFC 4303).
///
/// `encapsulate` turns an inner IPv4/IPv6 packet into an ESP packet starting
/// at the SPI; `decapsulate` checks and opens one. Sequence numbers start at 1.
/// Key bytes are never shown in reprs or error messages.
#[pyclass(module = "vpn", name = "EspSa")]
struct EspSa {
    sa: CoreSa,
}

#[pymethods]
impl EspSa {
    #[new]
    #[pyo3(signature = (
        spi, enc, enc_key, integ=None, integ_key=None, esn=false, replay_window=1024, *,
        udp_encap=None, tfc_pad_to=None, aead_pad_to_16=true,
        soft_bytes=None, soft_packets=None, soft_seconds=None,
        hard_bytes=None, hard_packets=None, hard_seconds=None,
        now_ns=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        spi: &Bound<'_, PyAny>,
        enc: &str,
        enc_key: &Bound<'_, PyAny>,
        integ: Option<&str>,
        integ_key: Option<&Bound<'_, PyAny>>,
        esn: bool,
        replay_window: i64,
        udp_encap: Option<(u16, u16)>,
        tfc_pad_to: Option<u16>,
        aead_pad_to_16: bool,
        soft_bytes: Option<u64>,
        soft_packets: Option<u64>,
        soft_seconds: Option<f64>,
        hard_bytes: Option<u64>,
        hard_packets: Option<u64>,
        hard_seconds: Option<f64>,
        now_ns: Option<u64>,
    ) -> PyResult<Self> {
        let spi: u32 = spi
            .extract()
            .map_err(|_| config_err(py, "spi must be an integer between 256 and 2**32 - 1"))?;
        let replay_window = u32::try_from(replay_window)
            .map_err(|_| config_err(py, "replay window must be between 32 and 65536 packets"))?;
        let encryption = EncryptionAlgorithm::from_keyword(enc).map_err(|e| esp_err(py, e))?;
        let integrity = integ
            .map(IntegrityAlgorithm::from_keyword)
            .transpose()
            .map_err(|e| esp_err(py, e))?;
        let mut config = EspSaConfig::new(spi, encryption);
        config.integrity = integrity;
        config.esn = esn;
        config.replay_window = replay_window;
        if let Some((source_port, destination_port)) = udp_encap {
            config.framing = Framing::UdpEncap {
                source_port,
                destination_port,
            };
        }
        config.tfc_pad_to = tfc_pad_to;
        config.aead_pad_to_16 = aead_pad_to_16;
        config.lifetimes.soft = limits(soft_bytes, soft_packets, soft_seconds)?;
        config.lifetimes.hard = limits(hard_bytes, hard_packets, hard_seconds)?;

        // Key arguments: copied into zeroized buffers only for the call.
        let key_bytes =
            |obj: &Bound<'_, PyAny>, what: &str| -> PyResult<zeroize::Zeroizing<Vec<u8>>> {
                let input = Input::new(obj)
                    .map_err(|_| PyTypeError::new_err(format!("{what} must be bytes-like")))?;
                let (ptr, len) = input.raw();
                // SAFETY: `raw` is valid for `len` bytes while no Python code runs.
                Ok(zeroize::Zeroizing::new(
                    unsafe { core::slice::from_raw_parts(ptr, len) }.to_vec(),
                ))
            };
        let enc_key = key_bytes(enc_key, "enc_key")?;
        let integ_key = match integ_key {
            Some(k) => key_bytes(k, "integ_key")?,
            None => zeroize::Zeroizing::new(Vec::new()),
        };
        let now = now(py, now_ns)?;
        let sa = CoreSa::new(
            &config,
            EspKeys {
                encryption: &enc_key,
                integrity: &integ_key,
            },
            now,
            &mut OsEntropy,
        )
        .map_err(|e| esp_err(py, e))?;
        Ok(EspSa { sa })
    }

    /// Encapsulates one inner IPv4/IPv6 packet; returns the ESP packet.
    #[pyo3(signature = (inner, *, now_ns=None))]
    fn encapsulate<'py>(
        &mut self,
        py: Python<'py>,
        inner: &Bound<'py, PyAny>,
        now_ns: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let now = now(py, now_ns)?;
        let input = Input::new(inner)?;
        let (src, src_len) = input.raw();
        let total = self.sa.encapsulated_len(src_len);
        let headroom = self.sa.headroom();
        let sa = &mut self.sa;
        PyBytes::new_with(py, total, |buf| {
            // SAFETY: `src` is valid for `src_len` bytes and cannot overlap
            // the new bytes object; `headroom + src_len <= total`.
            buf[headroom..headroom + src_len]
                .copy_from_slice(unsafe { core::slice::from_raw_parts(src, src_len) });
            sa.encapsulate_in_place(now, buf, src_len)
                .map(|_| ())
                .map_err(|e| esp_err(py, e))
        })
    }

    /// Encapsulates `inner` into `out` (a bytearray, or another writable
    /// buffer); returns the ESP packet's length. `out` must hold at least
    /// `encapsulated_len(len(inner))` bytes; `inner` may be `out` itself.
    #[pyo3(signature = (inner, out, *, now_ns=None))]
    fn encapsulate_into(
        &mut self,
        py: Python<'_>,
        inner: &Bound<'_, PyAny>,
        out: &Bound<'_, PyAny>,
        now_ns: Option<u64>,
    ) -> PyResult<usize> {
        let now = now(py, now_ns)?;
        let input = Input::new(inner)?;
        let output = Output::new(out)?;
        let (_, src_len) = input.raw();
        let total = self.sa.encapsulated_len(src_len);
        if output.len() < total {
            return Err(esp_err(py, EspError::BufferTooSmall { needed: total }));
        }
        let headroom = self.sa.headroom();
        let sa = &mut self.sa;
        output.process(
            total,
            input.raw(),
            headroom,
            |buf| {
                sa.encapsulate_in_place(now, buf, src_len)
                    .map_err(|e| esp_err(py, e))
            },
            |n| *n,
        )
    }

    /// Verifies and decrypts one ESP packet (starting at the SPI, or at the
    /// UDP header with `udp_encap`); returns the inner IP packet. A TFC dummy
    /// packet yields `b""`.
    #[pyo3(signature = (esp, *, now_ns=None))]
    fn decapsulate<'py>(
        &mut self,
        py: Python<'py>,
        esp: &Bound<'py, PyAny>,
        now_ns: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let now = now(py, now_ns)?;
        let input = Input::new(esp)?;
        let (src, src_len) = input.raw();
        // SAFETY: `src` is valid for `src_len` bytes while no Python code runs.
        let mut buf = unsafe { core::slice::from_raw_parts(src, src_len) }.to_vec();
        let inner = self
            .sa
            .decapsulate_in_place(now, &mut buf)
            .map_err(|e| esp_err(py, e))?;
        Ok(PyBytes::new(py, &buf[inner.range()]))
    }

    /// Decapsulates `esp` into `out`, leaving the inner packet at
    /// `out[:n]`; returns `n`. `out` must hold at least `len(esp)` bytes
    /// (decryption works in place there); `esp` may be `out` itself.
    #[pyo3(signature = (esp, out, *, now_ns=None))]
    fn decapsulate_into(
        &mut self,
        py: Python<'_>,
        esp: &Bound<'_, PyAny>,
        out: &Bound<'_, PyAny>,
        now_ns: Option<u64>,
    ) -> PyResult<usize> {
        let now = now(py, now_ns)?;
        let input = Input::new(esp)?;
        let output = Output::new(out)?;
        let (_, src_len) = input.raw();
        if output.len() < src_len {
            return Err(esp_err(py, EspError::BufferTooSmall { needed: src_len }));
        }
        let sa = &mut self.sa;
        output.process(
            src_len,
            input.raw(),
            0,
            |buf| {
                let inner = sa
                    .decapsulate_in_place(now, buf)
                    .map_err(|e| esp_err(py, e))?;
                buf.copy_within(inner.range(), 0);
                Ok(inner.len)
            },
            |n| *n,
        )
    }

    /// Exact ESP packet length for an inner packet of `inner_len` bytes.
    fn encapsulated_len(&self, inner_len: usize) -> usize {
        self.sa.encapsulated_len(inner_len)
    }

    /// Fires time lifetimes that are due (spurious calls are harmless).
    #[pyo3(signature = (*, now_ns=None))]
    fn handle_timeout(&mut self, py: Python<'_>, now_ns: Option<u64>) -> PyResult<()> {
        let now = now(py, now_ns)?;
        self.sa.handle_timeout(now);
        Ok(())
    }

    /// The next time lifetime deadline in `time.monotonic_ns()` nanoseconds, or None.
    fn poll_timeout(&self) -> Option<u64> {
        self.sa.poll_timeout().map(Timestamp::as_nanos)
    }

    /// The next event as a dict (`{"event": "soft_lifetime" | "hard_lifetime"
    /// | "sequence_exhausted", "spi": int, "limit": "bytes" | "packets" | "time"}`),
    /// or None.
    fn poll_event<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(event) = self.sa.poll_event() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        let (name, spi, limit) = match event {
            EspEvent::SoftLifetimeReached { spi, limit } => {
                ("soft_lifetime", spi, Some(limit_name(limit)))
            }
            EspEvent::HardLifetimeReached { spi, limit } => {
                ("hard_lifetime", spi, Some(limit_name(limit)))
            }
            EspEvent::SequenceExhausted { spi } => ("sequence_exhausted", spi, None),
        };
        d.set_item("event", name)?;
        d.set_item("spi", spi)?;
        if let Some(limit) = limit {
            d.set_item("limit", limit)?;
        }
        Ok(Some(d))
    }

    /// All counters as a dict.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.sa.counters();
        let d = PyDict::new(py);
        for (k, v) in [
            ("packets_out", c.packets_out),
            ("bytes_out", c.bytes_out),
            ("packets_in", c.packets_in),
            ("bytes_in", c.bytes_in),
            ("icv_failures", c.icv_failures),
            ("replay_duplicates", c.replay_duplicates),
            ("replay_too_old", c.replay_too_old),
            ("replay_drops", c.replay_drops()),
            ("malformed", c.malformed),
            ("dummy_packets", c.dummy_packets),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    #[getter]
    fn spi(&self) -> u32 {
        self.sa.spi()
    }
    #[getter]
    fn encryption(&self) -> &'static str {
        self.sa.config().encryption.keyword()
    }
    #[getter]
    fn integrity(&self) -> Option<&'static str> {
        self.sa.config().integrity.map(IntegrityAlgorithm::keyword)
    }
    #[getter]
    fn esn(&self) -> bool {
        self.sa.config().esn
    }
    #[getter]
    fn replay_window(&self) -> u32 {
        self.sa.replay_window_size()
    }
    /// Bytes in front of the inner packet in an encapsulated packet.
    #[getter]
    fn headroom(&self) -> usize {
        self.sa.headroom()
    }
    /// Most bytes that follow the inner packet (padding, trailer, ICV).
    #[getter]
    fn tailroom(&self) -> usize {
        self.sa.tailroom()
    }
    #[getter]
    fn last_sequence_out(&self) -> u64 {
        self.sa.last_sequence_out()
    }
    #[getter]
    fn expired(&self) -> bool {
        self.sa.is_expired()
    }
    #[getter]
    fn packets_out(&self) -> u64 {
        self.sa.counters().packets_out
    }
    #[getter]
    fn bytes_out(&self) -> u64 {
        self.sa.counters().bytes_out
    }
    #[getter]
    fn packets_in(&self) -> u64 {
        self.sa.counters().packets_in
    }
    #[getter]
    fn bytes_in(&self) -> u64 {
        self.sa.counters().bytes_in
    }
    #[getter]
    fn icv_failures(&self) -> u64 {
        self.sa.counters().icv_failures
    }
    #[getter]
    fn replay_duplicates(&self) -> u64 {
        self.sa.counters().replay_duplicates
    }
    #[getter]
    fn replay_too_old(&self) -> u64 {
        self.sa.counters().replay_too_old
    }
    #[getter]
    fn replay_drops(&self) -> u64 {
        self.sa.counters().replay_drops()
    }
    #[getter]
    fn malformed(&self) -> u64 {
        self.sa.counters().malformed
    }
    #[getter]
    fn dummy_packets(&self) -> u64 {
        self.sa.counters().dummy_packets
    }

    fn __repr__(&self) -> String {
        let c = self.sa.config();
        let integ = c
            .integrity
            .map_or(String::new(), |i| format!(", integ='{}'", i.keyword()));
        format!(
            "EspSa(spi={:#010x}, enc='{}'{}, esn={})",
            c.spi,
            c.encryption.keyword(),
            integ,
            if c.esn { "True" } else { "False" }
        )
    }
}

/// Supported encryption keywords (canonical strongSwan spellings).
#[pyfunction]
fn encryption_algorithms() -> Vec<&'static str> {
    EncryptionAlgorithm::ALL
        .iter()
        .map(|a| a.keyword())
        .collect()
}

/// Supported integrity keywords (for the CBC algorithms).
#[pyfunction]
fn integrity_algorithms() -> Vec<&'static str> {
    IntegrityAlgorithm::ALL
        .iter()
        .map(|a| a.keyword())
        .collect()
}

/// Key material length for an encryption keyword (AEAD: key plus 4-byte salt),
/// or for an integrity keyword when `integrity=True`.
#[pyfunction]
#[pyo3(signature = (keyword, integrity=false))]
fn key_length(py: Python<'_>, keyword: &str, integrity: bool) -> PyResult<usize> {
    if integrity {
        IntegrityAlgorithm::from_keyword(keyword)
            .map(IntegrityAlgorithm::key_len)
            .map_err(|e| esp_err(py, e))
    } else {
        EncryptionAlgorithm::from_keyword(keyword)
            .map(EncryptionAlgorithm::keymat_len)
            .map_err(|e| esp_err(py, e))
    }
}

#[pymodule]
fn _vpn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let ex = exceptions(py)?;
    m.add("VpnError", ex.base.bind(py))?;
    m.add("ConfigError", ex.config.bind(py))?;
    m.add("BufferTooSmallError", ex.buffer.bind(py))?;
    m.add("MalformedPacketError", ex.malformed.bind(py))?;
    m.add("AuthenticationError", ex.authentication.bind(py))?;
    m.add("ReplayError", ex.replay.bind(py))?;
    m.add("SaExpiredError", ex.expired.bind(py))?;
    m.add_class::<EspSa>()?;
    m.add_class::<config::Config>()?;
    m.add_class::<bgp::BgpSpeaker>()?;
    m.add_class::<bgp::BgpEvent>()?;
    let cx = connection::connection_exceptions(py)?;
    m.add("NoRouteError", cx.no_route.bind(py))?;
    m.add("PacketTooBigError", cx.too_big.bind(py))?;
    m.add("TunnelNotUpError", cx.not_connected.bind(py))?;
    m.add_class::<connection::Connection>()?;
    m.add_class::<connection::Received>()?;
    m.add_class::<connection::Transmit>()?;
    m.add_class::<connection::Event>()?;
    m.add_function(wrap_pyfunction!(encryption_algorithms, m)?)?;
    m.add_function(wrap_pyfunction!(integrity_algorithms, m)?)?;
    m.add_function(wrap_pyfunction!(key_length, m)?)?;
    Ok(())
}
