"""posedistill.data"""
