"""The population register: NIK rules, region codes, citizen records, import and generation."""
