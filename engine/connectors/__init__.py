"""Sources and destinations, one module per transport. Connectors know transports, not
standards: a connector that must read a standard's acknowledgement asks the codec."""
