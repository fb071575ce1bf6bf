"""posedistill.engine"""
