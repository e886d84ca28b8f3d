"""Tests: real labs, real controllers and real traffic where the component can run here."""
