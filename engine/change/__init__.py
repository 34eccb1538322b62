"""Change control: revisions of the channels and the mappings they pin, who made and
approved them, which one is live, and the running engine following the live one."""
