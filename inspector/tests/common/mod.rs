pub mod fake_stub;
