"""posedistill.eval"""
