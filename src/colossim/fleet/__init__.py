"""Fleet accounting: H100-equivalents, holdings over time, capex, power and claim checks.

- :mod:`.h100e` -- H100-equivalents of any accelerator by a named metric
- :mod:`.holdings` -- the dataset: organisations, holdings (totals and cluster snapshots), the loader
- :mod:`.dates` -- months, quarters and halves
- :mod:`.accounting` -- valuation of holdings, quarterly series (the no-double-counting rule), the
  largest clusters at a date
- :mod:`.growth` -- quarter on quarter, year on year, CAGR, doubling time
- :mod:`.costs` -- capex (chips and all-in) and facility power, parameters shown
- :mod:`.claims` -- the public claims and their verdicts (engines register more evaluators)
"""
