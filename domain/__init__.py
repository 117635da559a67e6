"""Domain rules with no I/O: NIK and phone formats, eligibility criteria."""
