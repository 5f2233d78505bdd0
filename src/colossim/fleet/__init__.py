"""Fleet accounting: H100-equivalents, holdings over time, capex, power and claim checks."""
